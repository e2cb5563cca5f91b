"""Starting, resuming and ending a swarm run: everything around the scheduler.

    record = asyncio.run(execute(db, RunConfig(n=8, search="searxng"), display=QuietDisplay()))

Order matters for "nothing half-written": the personas are selected, the search backend configured and
the LLM endpoint checked before the run's row exists, so a bad filter, a missing setting, an
unreachable endpoint or a wrong key stop the command with one message and leave no trace. Once the row
exists, the run always ends with a status (finished, interrupted or failed), every pending write
flushed and its counts re-read from the tables.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from agents import quality, recipes, run_signals
from agents.cycle import Conversation
from agents.display import Display, Guarded
from agents.llm import LLMSettings
from agents.llm.errors import LLMUnavailable
from agents.llm.local import LocalModel
from agents.recipes.templates import PersonaView
from agents.runs import RunConfig, RunError, RunStore, new_run_id, status_of
from agents.session import LOCAL, Prior, RunPlan, RunSession
from crawler.search import SEARCH_BACKENDS, SearchBackend
from persona_hub import count, sample
from storage import Database


def resolve_llm(config: RunConfig, env: LLMSettings) -> RunConfig:
    """Fix the endpoint and model into the config: a flag, else the environment (`env`, read once by
    LLMSettings.from_env), else the embedded local model."""
    base_url = config.base_url or env.base_url
    if base_url is None and not env.api_key:
        return replace(config, base_url=LOCAL, model=config.model or LocalModel.default_name())
    return replace(config, base_url=base_url, model=config.model or env.model)


async def execute(
    db: Database,
    config: RunConfig,
    display: Display,
    *,
    resume: str | None = None,
    local_model: LocalModel | None = None,
    search: SearchBackend | None = None,
) -> dict[str, Any]:
    """Run (or resume) a swarm to its end; returns the final `runs` record.

    `search` replaces the backend the config names (the demo's own site); `local_model` an already
    started embedded model.
    """
    display = Guarded(display)
    env = LLMSettings.from_env()  # the one read of OPENAI_*, SWARM_MODEL and SWARM_LLM_*: a bad value stops here
    plan = await (_resumed(db, resume) if resume else _new(db, config, env))
    if not isinstance(plan, RunPlan):  # a finished run with nothing left to do: its record
        display.finished(plan)
        return plan
    try:
        async with RunSession(db, plan, display, env, search=search, local_model=local_model) as session:
            return await session.drive()
    finally:
        run_signals.remove()  # only now: a Ctrl-C while the run's resources close must not interrupt them


async def _new(db: Database, config: RunConfig, env: LLMSettings) -> RunPlan:
    if not config.search and not config.urls:
        backends = ", ".join(SEARCH_BACKENDS.names())
        raise RunError(f"say where agents read: {{--search}} BACKEND ({backends}) or {{--urls}} FILE")
    config = resolve_llm(config, env)
    recipe = recipes.load(config.recipe) if config.recipe else recipes.default()
    problem = quality.language_problem(recipe.spec.language)
    if problem:
        raise RunError(f"recipe {recipe.name}: {problem}")
    personas = await asyncio.to_thread(_select, db, config)
    return RunPlan(new_run_id(), config, personas, recipe)


async def _resumed(db: Database, run_id: str) -> RunPlan | dict[str, Any]:
    store = RunStore(db)
    record = store.get(run_id)
    if record is None:
        raise RunError(f"no run {run_id} in {db.path}: see swarm runs list")
    shown = status_of(record)
    if shown == "running":
        raise RunError(
            f"run {run_id} is still running (process {record['pid']} on {record['hostname']}); "
            "stop it first (Ctrl-C) or wait for it"
        )
    config = RunConfig.from_dict(record["config"])
    personas = await asyncio.to_thread(store.personas, run_id)
    finished = await asyncio.to_thread(store.finished_units, run_id)
    stored = await asyncio.to_thread(store.partial_units, run_id)
    partial = {(c.persona_id, c.cycle): c for c in map(Conversation.from_row, stored)}
    prior = Prior(finished, await asyncio.to_thread(store.failed_attempts, run_id), partial)
    done = sum(1 for p in personas for cycle in range(config.cycles) if (p.id, cycle) in prior.finished)
    if shown == "finished" and done == len(personas) * config.cycles:
        return record  # a finished run with failed units is not done: it retries them
    return RunPlan(
        run_id,
        config,
        personas,
        store.recipe(record),
        resumed=True,
        prior=prior,
        elapsed_before=float(record.get("elapsed_s") or 0.0),
        sessions_before=int(record.get("sessions") or 0),
    )


def _select(db: Database, config: RunConfig) -> list[PersonaView]:
    drawn = sample(db, config.n, where=config.where, seed=config.seed, stratify_by=config.stratify_by)
    if not drawn.rows:
        total = count(db)
        if not total:
            raise RunError("the persona hub is empty: import personas first (swarm personas import FILE)")
        raise RunError(
            f"no persona matches {{--where}} {config.where!r} (the hub has {total}); "
            'check it with swarm personas count --where "…"'
        )
    # one unit per persona and cycle: a persona listed twice would be the same units twice
    chosen = {
        str(row["persona_id"]): PersonaView(str(row["persona_id"]), str(row["text"]), row.get("attributes"))
        for row in drawn.rows
    }
    return list(chosen.values())


__all__ = ["LOCAL", "Display", "LLMUnavailable", "RunError", "execute", "resolve_llm"]
