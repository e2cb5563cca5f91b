"""One session of a run: what it opens (search backend, writer, web reader, embedded model, LLM client),
the swarm driven over them, and the ending that always leaves the run's row with a status.

    async with RunSession(db, plan, display, llm_env) as session:
        record = await session.drive()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from agents import heartbeat, run_signals
from agents.cycle import Conversation, CycleConfig
from agents.display import Display
from agents.endpoints import open_models
from agents.llm import LLMSettings
from agents.llm.local import LocalModel
from agents.reader import WebReader
from agents.recipes import Recipe, default
from agents.recipes.templates import PersonaView
from agents.runs import RunConfig, RunStore
from agents.swarm import Swarm
from crawler import CrawlSettings
from crawler.pages import PageRow
from crawler.search import SearchBackend
from crawler.search import backend as search_backend
from storage import BatchWriter, Database

log = logging.getLogger(__name__)
LOCAL = "local"  # runs.config.base_url for the embedded model


@dataclass
class Prior:
    """What a resumed run's earlier sessions did: the units with a complete conversation (→ the next
    question each predicted), how often each failed unit failed, and the partial conversations (whose
    failed steps are all that runs again)."""

    finished: dict[tuple[str, int], str | None] = field(default_factory=dict)
    attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    partial: dict[tuple[str, int], Conversation] = field(default_factory=dict)


@dataclass
class RunPlan:
    """What a session is to do, settled before anything opens: the run, its config and personas, and
    (when resumed) what earlier sessions did."""

    run_id: str
    config: RunConfig
    personas: list[PersonaView]
    recipe: Recipe = field(default_factory=default)
    resumed: bool = False
    prior: Prior = field(default_factory=Prior)
    elapsed_before: float = 0.0  # seconds of work in earlier sessions
    sessions_before: int = 0


class RunSession:
    """Opens what the run needs in order, and closes it in reverse, whatever happens in between.

    `search` replaces the backend the config names (the demo's own site); `local_model` an embedded
    model already started."""

    def __init__(
        self,
        db: Database,
        plan: RunPlan,
        display: Display,
        llm_env: LLMSettings,
        *,
        search: SearchBackend | None = None,
        local_model: LocalModel | None = None,
    ):
        self.db, self.plan, self.display, self.llm_env = db, plan, display, llm_env
        self.store = RunStore(db)
        self.search, self.local_model = search, local_model
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> RunSession:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()  # in reverse: llm, model, reader, writer, search

    async def _open(self) -> None:
        config, stack = self.plan.config, self._stack
        if self.search is None and config.search is not None:
            self.search = search_backend(config.search, rate=config.search_rate, concurrency=config.search_concurrency)
            stack.push_async_callback(self.search.aclose)
        # a unit's conversation id is derived from run, persona and cycle: a partial one completed on
        # --resume takes its own place
        self.writer = BatchWriter(self.db, on_conflict={"conversations": "replace", "quality": "replace"})
        stack.push_async_callback(asyncio.to_thread, self.writer.close)
        # built before the run's row: a --render always without Chromium stops here, leaving no trace
        self.reader = WebReader(
            CrawlSettings(
                allow_private=config.allow_private,
                host_rate=config.host_rate,
                host_concurrency=config.host_concurrency,
                depth=config.depth,
                render=config.render,
            ),
            self.writer,
            search=self.search,
            urls=config.urls,
            results_per_query=config.results_per_query,
            run_id=self.plan.run_id,
        )
        stack.push_async_callback(self.reader.aclose)
        self.models = await open_models(
            stack, self.plan.recipe, await self._llm_settings(), self.db, self.writer, run_id=self.plan.run_id
        )

    async def _llm_settings(self) -> LLMSettings:
        config = self.plan.config
        if config.base_url != LOCAL:
            model_name = config.model or self.llm_env.model
            return replace(
                self.llm_env, base_url=config.base_url, model=model_name, max_concurrency=config.llm_concurrency
            )
        model = self.local_model
        if model is None:
            model = LocalModel()
            self._stack.push_async_callback(asyncio.to_thread, model.stop)  # also after a Ctrl-C during start
            await asyncio.to_thread(model.start)
        # llama-cpp-python's server answers one request at a time: waiting here, not in its queue,
        # keeps each request's timeout for the work itself
        return replace(self.llm_env, base_url=model.base_url, api_key="local", model=model.name, max_concurrency=1)

    async def drive(self) -> dict[str, Any]:
        """The swarm, from the run's row to its status; returns the final `runs` record."""
        plan, config = self.plan, self.plan.config
        if not plan.resumed:
            await asyncio.to_thread(self.store.create, plan.run_id, config, [p.id for p in plan.personas], plan.recipe)
        session = await asyncio.to_thread(self.store.begin_session, plan.run_id, plan.sessions_before)
        swarm = self._swarm(session)
        loop = asyncio.get_running_loop()
        run_signals.stop_on_signal(loop, swarm, self.display)
        started = time.monotonic()
        beats = asyncio.create_task(
            heartbeat.heartbeat(self.store, plan.run_id, session, swarm, self.writer, self.display, plan.elapsed_before)
        )
        status, error = "failed", None
        try:
            self.display.started(plan.run_id, swarm, plan.resumed)
            status = await swarm.run()
            error = swarm.failure or (swarm.progress.stopping if status == "interrupted" else None)
            if status == "finished" and not swarm.progress.units_ok + swarm.progress.units_skipped:
                status, error = "failed", _nothing_made(swarm)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            # from here a Ctrl-C does not cut the ending short: pending rows are flushed, the row gets its status
            run_signals.protect_ending(loop, self.writer)
            # each step on its own, with the heartbeat still going (a long flush must not look like a death)
            for step in (self.reader.aclose, self.writer.aflush):
                try:
                    await step()
                except Exception as exc:
                    log.error("while ending run %s: %s", plan.run_id, exc)
                    status, error = "failed", error or f"{type(exc).__name__}: {exc}"
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)
            elapsed = plan.elapsed_before + time.monotonic() - started
            record = await asyncio.to_thread(self.store.finish, plan.run_id, session, status, elapsed, error)
        if record.get("sessions") != session:  # another process resumed the run meanwhile: the row is its own
            record = {
                **record,
                "status": "taken_over",
                "error": f"another process ({record.get('pid')} on {record.get('hostname')}) continues this run; "
                "what this one finished is saved",
            }
        for warning in self.reader.warnings:
            record.setdefault("warnings", []).append(warning)
        self.display.finished(record)
        return record

    def _swarm(self, session: int) -> Swarm:
        config = self.plan.config
        small = config.base_url == LOCAL  # the embedded model has a 4,096-token window: prompts are cut to fit
        cycle = CycleConfig(
            turns=config.turns,
            pages=config.pages,
            variations=config.variations,
            source_chars=config.source_chars or (2_400 if small else CycleConfig.source_chars),
            context_chars=config.context_chars or (9_000 if small else CycleConfig.context_chars),
            answer_tokens=config.answer_tokens or (160 if small else CycleConfig.answer_tokens),
            checks=config.checks,
        )
        swarm = Swarm(
            self.plan.run_id,
            session,
            self.models,
            self.reader,
            self.writer,
            self.plan.personas,
            cycle,
            recipe=self.plan.recipe,
            concurrency=config.concurrency,
            cycles=config.cycles,
            finished=self.plan.prior.finished,
            attempts=self.plan.prior.attempts,
            partial=self.plan.prior.partial,
            grace=config.grace,
        )

        def counted(row: PageRow) -> None:
            if row.ok:
                swarm.progress.pages_ok += 1
            else:
                swarm.progress.pages_failed[str(row.error)] += 1

        self.reader.on_page = counted
        return swarm


def _nothing_made(swarm: Swarm) -> str:
    reasons = ", ".join(f"{reason} ×{n}" for reason, n in swarm.progress.units_failed.most_common(3))
    return f"no conversation was made: every unit failed ({reasons or 'no unit ran'})"
