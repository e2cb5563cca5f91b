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
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from agents.cycle import CycleConfig
from agents.llm import LLMClient, LLMSettings
from agents.llm.errors import LLMUnavailable
from agents.llm.local import LocalModel
from agents.llm.settings import env_limits
from agents.reader import WebReader
from agents.runs import HEARTBEAT_S, RunConfig, RunError, RunStore, new_run_id, status_of
from agents.swarm import Swarm
from crawler import CrawlSettings
from crawler.pages import PageRow
from crawler.search import SearchBackend
from crawler.search import backend as search_backend
from persona_hub import count, sample
from storage import BatchWriter, Database

log = logging.getLogger(__name__)
LOCAL = "local"  # runs.config.base_url for the embedded model


class Display(Protocol):
    def started(self, run_id: str, swarm: Swarm, resumed: bool) -> None: ...
    def tick(self, swarm: Swarm) -> None: ...
    def stopping(self, swarm: Swarm, second: bool) -> None: ...
    def finished(self, record: dict[str, Any]) -> None: ...


@dataclass
class Prior:
    """What a resumed run's earlier sessions did: the units with a conversation (→ the next question
    each predicted) and how often each failed unit failed."""

    finished: dict[tuple[str, int], str | None] = field(default_factory=dict)
    attempts: dict[tuple[str, int], int] = field(default_factory=dict)


def resolve_llm(config: RunConfig) -> RunConfig:
    """Fix the endpoint and model into the config: a flag, else the environment, else the local model."""
    base_url = config.base_url or os.environ.get("OPENAI_BASE_URL") or None
    if base_url is None and not os.environ.get("OPENAI_API_KEY"):
        base_url = LOCAL
    model = config.model or os.environ.get("SWARM_MODEL") or None
    if base_url == LOCAL:
        model = model or LocalModel.default_name()
    return replace(config, base_url=base_url, model=model or LLMSettings.model)


def _select(db: Database, config: RunConfig) -> list[tuple[str, str]]:
    drawn = sample(db, config.n, where=config.where, seed=config.seed, stratify_by=config.stratify_by)
    if not drawn.rows:
        total = count(db)
        if not total:
            raise RunError("the persona hub is empty: import personas first (swarm personas import FILE)")
        raise RunError(
            f"no persona matches --where {config.where!r} (the hub has {total}); "
            'check it with swarm personas count --where "…"'
        )
    # one unit per persona and cycle: a persona listed twice would be the same units twice
    chosen = {str(row["persona_id"]): str(row["text"]) for row in drawn.rows}
    return list(chosen.items())


def _search(config: RunConfig) -> SearchBackend | None:
    if config.search is None:
        return None
    return search_backend(config.search, rate=config.search_rate, concurrency=config.search_concurrency)


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
    store = RunStore(db)
    display = _Guarded(display)
    env_limits()  # a bad $SWARM_LLM_* setting stops here, before anything starts
    prior = Prior()
    if resume:
        record = store.get(resume)
        if record is None:
            raise RunError(f"no run {resume} in {db.path}: see swarm runs list")
        shown = status_of(record)
        if shown == "running":
            raise RunError(
                f"run {resume} is still running (process {record['pid']} on {record['hostname']}); "
                "stop it first (Ctrl-C) or wait for it"
            )
        config = RunConfig.from_dict(record["config"])
        personas = await asyncio.to_thread(store.personas, resume)
        finished = await asyncio.to_thread(store.finished_units, resume)
        prior = Prior(finished, await asyncio.to_thread(store.failed_attempts, resume))
        done = sum(1 for pid, _ in personas for cycle in range(config.cycles) if (pid, cycle) in prior.finished)
        if shown == "finished" and done == len(personas) * config.cycles:
            display.finished(record)  # a finished run with failed units is not done: it retries them
            return record
        run_id, elapsed_before = resume, float(record.get("elapsed_s") or 0.0)
        sessions_before = int(record.get("sessions") or 0)
    else:
        if not config.search and not config.urls:
            raise RunError("say where agents read: --search BACKEND (searxng, duckduckgo, brave) or --urls FILE")
        config = resolve_llm(config)
        personas = await asyncio.to_thread(_select, db, config)
        run_id, elapsed_before, sessions_before = new_run_id(), 0.0, 0

    try:
        return await _execute(db, store, config, display, resume, run_id, personas, prior, elapsed_before,
                              sessions_before, local_model, search)  # fmt: skip
    finally:
        _remove_signals()  # only now: a Ctrl-C while the run's resources close must not interrupt them


async def _execute(
    db: Database,
    store: RunStore,
    config: RunConfig,
    display: Display,
    resume: str | None,
    run_id: str,
    personas: list[tuple[str, str]],
    prior: Prior,
    elapsed_before: float,
    sessions_before: int,
    local_model: LocalModel | None,
    search: SearchBackend | None,
) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:  # closed in reverse: llm, model, reader, writer, search
        if search is None and (own := _search(config)) is not None:
            search = own
            stack.push_async_callback(own.aclose)
        writer = BatchWriter(db, on_conflict={"conversations": "ignore"})
        stack.push_async_callback(asyncio.to_thread, writer.close)
        # built before the run's row: a --render always without Chromium stops here, leaving no trace
        reader = _reader(config, writer, search, run_id)
        stack.push_async_callback(reader.aclose)
        if config.base_url == LOCAL:
            model = local_model
            if model is None:
                model = LocalModel()
                stack.push_async_callback(asyncio.to_thread, model.stop)  # also after a Ctrl-C during start
                await asyncio.to_thread(model.start)
            settings = LLMSettings(
                **env_limits(),  # type: ignore[arg-type]
                base_url=model.base_url,
                api_key="local",
                model=model.name,
                # llama-cpp-python's server answers one request at a time: waiting here, not in its
                # queue, keeps each request's timeout for the work itself
                max_concurrency=1,
            )
        else:
            settings = LLMSettings.from_env(
                base_url=config.base_url, model=config.model, max_concurrency=config.llm_concurrency
            )
        llm = LLMClient(settings, db, writer, run_id=run_id)
        stack.push_async_callback(llm.aclose)
        await llm.check()
        if not resume:
            await asyncio.to_thread(store.create, run_id, config, [pid for pid, _ in personas])
        session = await asyncio.to_thread(store.begin_session, run_id, sessions_before)
        return await _drive(
            store, run_id, session, config, personas, prior, llm, reader, writer, display, resume, elapsed_before
        )
    raise AssertionError("unreachable")  # pragma: no cover  (mypy: the exit stack does not swallow)


def _reader(config: RunConfig, writer: BatchWriter, search: SearchBackend | None, run_id: str) -> WebReader:
    crawl = CrawlSettings(
        allow_private=config.allow_private,
        host_rate=config.host_rate,
        host_concurrency=config.host_concurrency,
        depth=config.depth,
        render=config.render,
    )
    return WebReader(
        crawl, writer, search=search, urls=config.urls, results_per_query=config.results_per_query, run_id=run_id
    )


async def _drive(
    store: RunStore,
    run_id: str,
    session: int,
    config: RunConfig,
    personas: list[tuple[str, str]],
    prior: Prior,
    llm: LLMClient,
    reader: WebReader,
    writer: BatchWriter,
    display: Display,
    resume: str | None,
    elapsed_before: float,
) -> dict[str, Any]:
    started = time.monotonic()
    # the embedded model has a 4,096-token window: its prompts are cut to fit
    small = config.base_url == LOCAL
    cycle = CycleConfig(
        turns=config.turns,
        pages=config.pages,
        variations=config.variations,
        source_chars=config.source_chars or (2_400 if small else CycleConfig.source_chars),
        context_chars=config.context_chars or (9_000 if small else CycleConfig.context_chars),
        answer_tokens=config.answer_tokens or (160 if small else CycleConfig.answer_tokens),
    )
    swarm = Swarm(
        run_id,
        session,
        llm,
        reader,
        writer,
        personas,
        cycle,
        concurrency=config.concurrency,
        cycles=config.cycles,
        finished=prior.finished,
        attempts=prior.attempts,
        grace=config.grace,
    )

    def counted(row: PageRow) -> None:
        if row.ok:
            swarm.progress.pages_ok += 1
        else:
            swarm.progress.pages_failed[str(row.error)] += 1

    reader.on_page = counted
    loop = asyncio.get_running_loop()
    _install_signals(loop, swarm, display)
    beats = asyncio.create_task(_heartbeat(store, run_id, session, swarm, writer, display, elapsed_before, started))
    status, error = "failed", None
    try:
        display.started(run_id, swarm, resume is not None)
        status = await swarm.run()
        error = swarm.failure or (swarm.progress.stopping if status == "interrupted" else None)
        if status == "finished" and not swarm.progress.units_ok + swarm.progress.units_skipped:
            status, error = "failed", _nothing_made(swarm)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        # from here a Ctrl-C does not cut the ending short: the pending rows are flushed, the row gets its status
        _quiet_signals(loop, writer)
        # each step on its own, with the heartbeat still going (a long flush must not look like a death)
        for step in (reader.aclose, writer.aflush):
            try:
                await step()
            except Exception as exc:
                log.error("while ending run %s: %s", run_id, exc)
                status, error = "failed", error or f"{type(exc).__name__}: {exc}"
        beats.cancel()
        await asyncio.gather(beats, return_exceptions=True)
        record = await asyncio.to_thread(
            store.finish, run_id, session, status, elapsed_before + time.monotonic() - started, error
        )
    if record.get("sessions") != session:  # another process resumed the run meanwhile: the row is its own
        record = {
            **record,
            "status": "taken_over",
            "error": f"another process ({record.get('pid')} on {record.get('hostname')}) continues this run; "
            "what this one finished is saved",
        }
    for warning in reader.warnings:
        record.setdefault("warnings", []).append(warning)
    display.finished(record)
    return record


class _Guarded:
    """A display that cannot stop a run: `swarm run --json | head` closes stdout under it, and a run
    must still end with its row written. The first failure is logged; the display then goes quiet."""

    def __init__(self, display: Display):
        self.display, self.broken = display, False

    def _call(self, method: str, *args: Any) -> None:
        if self.broken:
            return
        try:
            getattr(self.display, method)(*args)
        except Exception as exc:
            self.broken = True
            log.warning("progress display stopped: %s", exc)

    def started(self, run_id: str, swarm: Swarm, resumed: bool) -> None:
        self._call("started", run_id, swarm, resumed)

    def tick(self, swarm: Swarm) -> None:
        self._call("tick", swarm)

    def stopping(self, swarm: Swarm, second: bool) -> None:
        self._call("stopping", swarm, second)

    def finished(self, record: dict[str, Any]) -> None:
        self._call("finished", record)


def _nothing_made(swarm: Swarm) -> str:
    reasons = ", ".join(f"{reason} ×{n}" for reason, n in swarm.progress.units_failed.most_common(3))
    return f"no conversation was made: every unit failed ({reasons or 'no unit ran'})"


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# what add/remove_signal_handler raise where handlers cannot be set: Windows' loops, a thread that is
# not the main one, a closed loop; a run there simply has no Ctrl-C handling of its own
_NO_HANDLERS = (NotImplementedError, RuntimeError, ValueError)


def _install_signals(loop: asyncio.AbstractEventLoop, swarm: Swarm, display: Display) -> None:
    for sig in _SIGNALS:
        name = signal.Signals(sig).name

        def handle(name: str = name) -> None:
            second = swarm.progress.stopping is not None
            swarm.stop(f"interrupted ({name})")
            display.stopping(swarm, second)

        with contextlib.suppress(*_NO_HANDLERS):
            loop.add_signal_handler(sig, handle)


def _quiet_signals(loop: asyncio.AbstractEventLoop, writer: BatchWriter) -> None:
    """While a run ends, a signal does not cut the last writes short; it only stops the writer from
    waiting out a database file another process holds (those rows go to the dead-letter file). The
    handlers are removed once `execute` returns."""
    for sig in _SIGNALS:
        with contextlib.suppress(*_NO_HANDLERS):
            loop.add_signal_handler(sig, writer.stop_waiting)


def _remove_signals() -> None:
    with contextlib.suppress(RuntimeError):
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            with contextlib.suppress(*_NO_HANDLERS):
                loop.remove_signal_handler(sig)


async def _heartbeat(
    store: RunStore,
    run_id: str,
    session: int,
    swarm: Swarm,
    writer: BatchWriter,
    display: Display,
    before: float,
    started: float,
) -> None:
    """Keep the row fresh (so the run is not taken for dead) and the display moving. Stop the run when
    the database refuses writes (the rows are in the dead-letter file; nothing more should pile up) or
    when another process has taken the run over (`--resume` of a run it wrongly took for dead)."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        display.tick(swarm)
        if writer.failure is not None and swarm.failure is None:
            swarm.fail(f"writing to the database failed: {writer.failure}")
        if time.monotonic() - last >= HEARTBEAT_S:
            last = time.monotonic()
            try:
                ours = await asyncio.to_thread(store.heartbeat, run_id, session, before + last - started)
            except Exception as exc:  # a busy file delays a heartbeat; the run goes on
                log.warning("heartbeat skipped: %s", exc)
                continue
            if not ours and swarm.failure is None:
                swarm.fail(f"run {run_id} was resumed by another process (session {session} is no longer its own)")


__all__ = ["LOCAL", "Display", "LLMUnavailable", "RunError", "execute", "resolve_llm"]
