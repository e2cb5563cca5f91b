"""`swarm eval`: the quality checks, the judges and the diversity figures of a run, over its stored
conversations — nothing is regenerated, and what is already scored is not scored again (unless
`force`), so an interrupted evaluation goes on where it stopped.

    report = await evaluate(db, EvalPlan(run_id, judges=["grounding", "persona"]), models)

The judges are judge steps (kinds `judge`, `grounding`) of a recipe: the run's own, else the bundled
default's of that name, or those of `judges_from`. Each conversation's pages come back from the
`pages` table through the source numbers its read step kept (`outputs.read.sources`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import fence, quality, reading, recipes
from agents.conversation import Conversation, CycleConfig
from agents.llm import LLMClient
from agents.llm.errors import LLMOutputError, LLMUnavailable
from agents.quality import diversity
from agents.quality.checks import Result
from agents.recipes import Recipe
from agents.recipes.templates import PersonaView, TemplateProblem
from agents.session import LOCAL
from agents.steps import CycleState, StepFailed, StepKind
from agents.steps.judge import JudgeKind
from agents.steps.read import Read, ReadOptions
from storage import BatchWriter, Database
from storage.errors import StorageError
from storage.sql import fetch_dicts

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]


class EvalError(StorageError):
    """An unknown run or judge: the message says what there is."""


@dataclass
class Stored:
    """One stored conversation, as the checks and judges see it."""

    conversation: Conversation
    persona: PersonaView
    pages: dict[int, reading.Page]  # source number → page; empty when the run kept no record of them
    scored: set[str]  # the check and judge names it already has rows for
    seen: dict[int, str] = field(default_factory=dict)  # source number → the text the assistant was given


@dataclass
class EvalPlan:
    run_id: str
    judges: list[str] = field(default_factory=list)  # judge step names; ["all"]: every judge step found
    judges_from: Recipe | None = None  # take the judges from this recipe rather than the run's
    checks: bool = True
    diversity: bool = True
    by: str | None = None  # persona attribute whose values are the strata of the diversity figures
    force: bool = False  # score again what is already scored
    concurrency: int = 4  # judge calls at once


@dataclass
class EvalReport:
    run_id: str
    conversations: int = 0
    checked: int = 0
    judged: Counter[str] = field(default_factory=Counter)  # judge → conversations judged now
    already: Counter[str] = field(default_factory=Counter)  # judge → conversations that had its scores
    failed: Counter[str] = field(default_factory=Counter)  # "judge: reason" → conversations
    without_pages: int = 0  # conversations whose pages are not known: citations and support not checked
    by: str | None = None  # the persona attribute of the strata
    figures: dict[str, list[diversity.Figure]] = field(default_factory=dict)  # stratum → figures


def run_recipe(db: Database, run_id: str) -> tuple[Recipe, dict[str, Any]]:
    """The recipe a run followed (the default for a run from before recipes) and its config."""
    with db.read() as con:
        found = con.execute("SELECT recipe, CAST(config AS VARCHAR) FROM runs WHERE run_id = ?", [run_id]).fetchall()
    if not found:
        raise EvalError(f"no run {run_id}: see swarm runs list")
    text, config = found[0]
    return (recipes.parse(text, f"run {run_id}'s recipe") if text else recipes.default()), json.loads(config or "{}")


def latest_run(db: Database) -> str:
    with db.read() as con:
        found = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()
    if not found:
        raise EvalError("no run to evaluate yet: swarm run makes one (or swarm demo)")
    return str(found[0][0])


def judge_steps(plan: EvalPlan, run: Recipe) -> list[JudgeKind]:
    """The judge steps named in the plan, from `judges_from`, else the run's recipe, else the default."""
    sources = [plan.judges_from] if plan.judges_from else [run, recipes.default()]
    found: dict[str, JudgeKind] = {}
    for recipe in sources:
        for step in recipe.steps:
            if isinstance(step, JudgeKind):
                found.setdefault(step.name, step)
    if plan.judges == ["all"]:
        return list(found.values())
    unknown = [name for name in plan.judges if name not in found]
    if unknown:
        where = plan.judges_from.source if plan.judges_from else "the run's recipe or the default recipe"
        raise EvalError(
            f"no judge step {', '.join(map(repr, unknown))} in {where}; there are: {', '.join(found) or 'none'}"
        )
    return [found[name] for name in dict.fromkeys(plan.judges)]


def result_names(step: JudgeKind) -> list[str]:
    """The `quality` rows a judge step writes."""
    return step.result_names(step.name)


def source_budget(recipe: Recipe, config: Mapping[str, Any]) -> int:
    """The characters of chunks the run's read step gave the assistant (as agents/session.py sized them)."""
    for step in recipe.steps:
        if isinstance(step, Read) and isinstance(step.options, ReadOptions) and step.options.source_chars:
            return step.options.source_chars
    return int(config.get("source_chars") or (2_400 if config.get("base_url") == LOCAL else CycleConfig.source_chars))


def rebuilt(numbered: Mapping[int, str], pages: Mapping[str, reading.Page], budget: int) -> dict[int, str]:
    """Each source number's text as the assistant saw it: the read step's chunks, made again from the
    same pages in the same order (reading.chunks is deterministic). When they do not come out numbered
    as stored (a page the read step chose gave no chunk), each number gets its page's opening."""
    order = [pages[page_id] for page_id in dict.fromkeys(numbered[n] for n in sorted(numbered))]
    chunks = reading.chunks(order, budget)
    if {c.number: c.page.page_id for c in chunks} == dict(numbered):
        return {c.number: c.text for c in chunks}
    return {n: pages[page_id].text[:1500] for n, page_id in numbered.items()}


def load(db: Database, run_id: str, budget: int = CycleConfig.source_chars) -> list[Stored]:
    with db.read() as con:
        rows = fetch_dicts(
            con.execute(
                "SELECT c.*, coalesce(p.text, '') AS persona_text, CAST(p.attributes AS VARCHAR) AS attributes "
                "FROM conversations c LEFT JOIN personas p USING (persona_id) WHERE c.run_id = ? "
                "ORDER BY c.created_at, c.conversation_id",
                [run_id],
            )
        )
        scored: dict[str, set[str]] = defaultdict(set)
        names = con.execute("SELECT conversation_id, check_name FROM quality WHERE run_id = ?", [run_id])
        for cid, name in names.fetchall():
            scored[cid].add(name)
        numbered = {row["conversation_id"]: _sources(_json(row["outputs"])) for row in rows}
        wanted = sorted({page_id for sources in numbered.values() for page_id in sources.values()})
        pages: dict[str, reading.Page] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            for page_id, url, title, text in con.execute(
                "SELECT page_id, url, coalesce(title, ''), coalesce(text, '') FROM pages WHERE page_id IN "
                f"({', '.join('?' * len(part))})",
                part,
            ).fetchall():
                pages[page_id] = reading.Page(page_id, url, title, text)
    stored = []
    for row in rows:
        cid = row["conversation_id"]
        conversation = Conversation.from_row(row)
        persona = PersonaView(row["persona_id"], row["persona_text"], json.loads(row["attributes"] or "{}") or {})
        # a page missing from the table makes its number unknown: the checks would read it as a citation of
        # no source, so the conversation counts as one whose pages are not known
        known = numbered[cid] if all(page_id in pages for page_id in numbered[cid].values()) else {}
        chosen = {n: pages[page_id] for n, page_id in known.items()}
        stored.append(
            Stored(conversation, persona, chosen, scored[cid], rebuilt(known, pages, budget) if known else {})
        )
    return stored


def _json(value: Any) -> Any:
    """A JSON column as DuckDB gives it back: text (or None)."""
    return json.loads(value) if isinstance(value, str) else (value or {})


def _sources(outputs: Mapping[str, Any]) -> dict[int, str]:
    """Source number → page id, from the output of the read step (whatever its name)."""
    for value in outputs.values():
        if isinstance(value, dict) and isinstance(value.get("sources"), list):
            return {int(s["n"]): str(s["page_id"]) for s in value["sources"] if isinstance(s, dict) and "n" in s}
    return {}


def check(item: Stored, recipe: Recipe, force: bool) -> list[Result]:
    """The checks a stored conversation lacks (all of them with `force`); those that read the pages only
    when its pages are known."""
    wanted = {
        c.name for c in quality.CHECKS if (force or c.name not in item.scored) and (item.pages or not c.needs_pages)
    }
    if not wanted or not item.conversation.messages:
        return []
    pages = {n: page.text for n, page in item.pages.items()}
    conversation = item.conversation
    return quality.check(conversation.messages, pages, conversation.metadata, persona=item.persona.text,
                         language=recipe.spec.language, only=wanted)  # fmt: skip


async def judge(
    item: Stored,
    steps: Sequence[StepKind],
    models: Mapping[str, LLMClient],
    slots: asyncio.Semaphore | None = None,
) -> dict[str, str]:
    """Run the judge steps on one stored conversation, each as soon as a slot is free (they are
    independent: a judge reads the conversation, not another judge); their results land in
    `conversation.quality`. Returns the steps that failed, with why."""
    conversation = item.conversation
    conversation.quality = []
    # the cache's scope: judged again by the same endpoint, the same answers come back; by another, its own
    scope = f"eval/{models['default'].settings.endpoint}/{conversation.conversation_id}"
    state = CycleState(item.persona, conversation, CycleConfig(), models, _no_reading, scope)
    state.judging = True
    if item.seen:
        chosen = [reading.Chunk(n, item.pages[n], text) for n, text in sorted(item.seen.items())]
        state.fenced["sources"] = fence.fence(fence.SOURCES, reading.render_sources(chosen))
    failed = {}

    async def one(step: StepKind) -> None:
        async with slots or contextlib.nullcontext():
            try:
                await step.run(state)
            except (LLMOutputError, StepFailed, TemplateProblem) as exc:
                failed[step.name] = f"{getattr(exc, 'reason', 'template_error')}: {exc}"

    await asyncio.gather(*(one(step) for step in steps))
    return failed


async def _no_reading(queries: list[str]) -> list[Any]:
    raise StepFailed("not_resumable", "swarm eval reads no pages")


async def evaluate(
    db: Database,
    plan: EvalPlan,
    writer: BatchWriter,
    models: Mapping[str, LLMClient],
    *,
    embed: Embed | None = None,
) -> EvalReport:
    recipe, config = run_recipe(db, plan.run_id)
    steps = judge_steps(plan, recipe) if plan.judges else []
    stored = await asyncio.to_thread(load, db, plan.run_id, source_budget(recipe, config))
    report = EvalReport(plan.run_id, conversations=len(stored), by=plan.by)
    now = dt.datetime.now(dt.UTC)

    def keep(cid: str, results: list[Result]) -> None:
        for result in results:
            writer.submit("quality", {**result.row(cid, plan.run_id), "checked_at": now})

    if plan.checks:
        for item in stored:
            report.without_pages += not item.pages
            results = check(item, recipe, plan.force)
            report.checked += bool(results)
            keep(item.conversation.conversation_id, results)
    slots = asyncio.Semaphore(plan.concurrency)  # judge calls at once, whichever conversations they are of
    conversations = asyncio.Semaphore(plan.concurrency)

    async def one(item: Stored) -> None:
        due = []
        for step in steps:
            if not plan.force and set(result_names(step)) <= item.scored:
                report.already[step.name] += 1
            else:
                due.append(step)
        if not due or not item.conversation.messages:
            return
        async with conversations:  # its prompts are built only when it is its turn: memory stays flat
            failed = await judge(item, due, models, slots)
        keep(item.conversation.conversation_id, item.conversation.quality)
        for step in due:
            if step.name in failed:
                report.failed[f"{step.name}: {failed[step.name].split(':', 1)[0]}"] += 1
            else:
                report.judged[step.name] += 1

    await asyncio.gather(*(one(item) for item in stored))
    if plan.diversity:
        report.figures = await measure(stored, plan.by, embed)
        await writer.aflush()
        await asyncio.to_thread(_forget_figures, db, plan.run_id)  # strata or figures of an earlier eval go
        for stratum, figures in report.figures.items():
            for f in figures:
                row = {"run_id": plan.run_id, "stratum": stratum, "metric": f.metric, "value": f.value, "n": f.n,
                       "detail": f.detail, "measured_at": now}  # fmt: skip
                writer.submit("run_metrics", row)
    await writer.aflush()
    return report


def _forget_figures(db: Database, run_id: str) -> None:
    with db.write() as con:
        con.execute("DELETE FROM run_metrics WHERE run_id = ?", [run_id])


async def measure(stored: list[Stored], by: str | None, embed: Embed | None) -> dict[str, list[diversity.Figure]]:
    """The diversity figures of the whole run ('') and of each value of persona attribute `by`."""
    items = [item for item in stored if item.conversation.messages]
    users = [" ".join(m["content"] for m in i.conversation.messages if m["role"] == "user") for i in items]
    wholes = [" ".join(m["content"] for m in i.conversation.messages) for i in items]
    groups: dict[str, list[int]] = {"": list(range(len(items)))}
    if by:
        for index, item in enumerate(items):
            # as --stratify-by names a column: any case
            value = next((v for k, v in item.persona.attributes.items() if k.lower() == by.lower()), None)
            if value is not None and value != "":
                groups.setdefault(f"{by}={value}", []).append(index)
    vectors = personas = None
    why = ""
    if embed is not None and len(items) >= 3:
        try:
            vectors = await embed(users)
            personas = await embed([item.persona.text for item in items])
        except (LLMUnavailable, LLMOutputError) as exc:  # the lexical figures stand without them
            why = f"embeddings: {exc}"
    figures = {}
    for stratum, members in groups.items():
        found = diversity.lexical([users[i] for i in members], [wholes[i] for i in members])
        if vectors is not None and personas is not None:
            found += diversity.semantic([vectors[i] for i in members], [personas[i] for i in members])
        elif why:
            found += [diversity.Figure(m, None, len(members), why) for m in diversity.SEMANTIC]
        figures[stratum] = found
    return figures
