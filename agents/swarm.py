"""The scheduler: `concurrency` agents at a time, each taking the next persona and running its cycles.

Task creation is gated: C worker coroutines pull personas from one iterator, so a run over 10,000
personas holds C agents in memory, not 10,000 tasks. Every agent shares one LLM client (one limiter
per endpoint) and one web reader (per-host gates, robots.txt cache, extraction pool), so the swarm as
a whole is as polite and as bounded as a single agent configured the same way.

The unit of work is one persona×cycle. A finished unit is a stored conversation whose id is derived
from (run, persona, cycle), so `--resume` skips it and a re-submitted row changes nothing. Stopping:
the first `stop()` starts no new unit and gives units in flight `grace` seconds to finish; the second
(or the grace running out) cancels them, and each cancelled unit is recorded as `abandoned`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from agents.cycle import Conversation, CycleConfig, CycleFailed, Models, Reader, complete, models_of, run_cycle
from agents.llm import LLMClient
from agents.llm.errors import LLMOutputError, LLMUnavailable
from agents.recipes import Recipe, default
from agents.recipes.templates import PersonaView
from agents.runs import PREVIOUS_FAILED, UnitReason
from storage import BatchWriter

log = logging.getLogger(__name__)


def conversation_id(run_id: str, persona_id: str, cycle: int) -> str:
    """The same unit always gets the same id: the key that makes resumed writes idempotent."""
    return "cv_" + hashlib.sha256(f"{run_id}\x00{persona_id}\x00{cycle}".encode()).hexdigest()[:16]


@dataclass
class Progress:
    """What a progress display shows; updated by the agents as they go (one event loop, no locks)."""

    personas: int
    cycles: int
    started: float = field(default_factory=time.monotonic)
    active: int = 0
    personas_done: int = 0
    units_ok: int = 0
    units_skipped: int = 0  # finished in an earlier session of this run
    units_failed: Counter[str] = field(default_factory=Counter)
    pages_ok: int = 0
    pages_failed: Counter[str] = field(default_factory=Counter)
    stopping: str | None = None

    @property
    def units(self) -> int:
        return self.personas * self.cycles

    @property
    def units_done(self) -> int:
        return self.units_ok + self.units_skipped + sum(self.units_failed.values())

    def eta_s(self) -> float | None:
        done_now = self.units_ok + sum(self.units_failed.values())
        elapsed = time.monotonic() - self.started
        if not done_now or elapsed <= 0:
            return None
        return (self.units - self.units_done) / (done_now / elapsed)


class Swarm:
    def __init__(
        self,
        run_id: str,
        session: int,
        llm: LLMClient | Models,
        read: Reader,
        writer: BatchWriter,
        personas: list[PersonaView],
        config: CycleConfig,
        *,
        recipe: Recipe | None = None,
        concurrency: int,
        cycles: int,
        finished: dict[tuple[str, int], str | None] | None = None,
        attempts: dict[tuple[str, int], int] | None = None,
        partial: dict[tuple[str, int], Conversation] | None = None,
        grace: float = 20.0,
    ):
        self.run_id, self.session, self.read, self.writer = run_id, session, read, writer
        self.models = models_of(llm)  # model alias → client
        self.recipe = recipe or default()
        self.personas, self.config, self.concurrency, self.cycles = personas, config, concurrency, cycles
        self.finished = finished or {}
        self.attempts = attempts or {}  # earlier failed attempts of a unit (a resumed run's retries)
        self.partial = partial or {}  # stored conversations whose late steps failed: only those run again
        self.grace = grace
        self.progress = Progress(len(personas), cycles)
        self.failure: str | None = None  # set when the endpoint is declared down: the run fails
        self._queue: Iterator[PersonaView] = iter(personas)
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._cut = False  # some persona's cycles were left undone by a stop
        self._grace_timer: asyncio.TimerHandle | None = None

    # -- control ------------------------------------------------------------------------------------
    def stop(self, why: str = "interrupted") -> None:
        """First call: start nothing new, let units in flight finish within `grace`. Second: cancel them."""
        if not self._stopping:
            self._stopping = True
            self.progress.stopping = why
            self._grace_timer = asyncio.get_running_loop().call_later(self.grace, self._cancel_all)
        else:
            self._cancel_all()

    def fail(self, why: str) -> None:
        """Stop the run as failed at once (the endpoint is down, the database refuses writes)."""
        if self.failure is None:
            self.failure = why
            self._stopping = True
            self.progress.stopping = why
            self._cancel_all()

    def _cancel_all(self) -> None:
        for worker in self._workers:
            worker.cancel()

    @property
    def complete(self) -> bool:
        """Every persona was taken up and nothing was cut short."""
        return self.progress.personas_done == len(self.personas) and not self._cut and self.failure is None

    async def run(self) -> str:
        """Work through the personas; returns the run status: finished, interrupted or failed."""
        agents = max(1, min(self.concurrency, len(self.personas)))
        self._workers = [asyncio.create_task(self._worker()) for _ in range(agents)]
        try:
            await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            if self._grace_timer is not None:
                self._grace_timer.cancel()
        if self.failure is not None:
            return "failed"
        return "finished" if self.complete else "interrupted"

    # -- the agents -----------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while not self._stopping:
            try:
                persona = next(self._queue)
            except StopIteration:
                return
            self.progress.active += 1
            try:
                await self._persona(persona)
            finally:
                self.progress.active -= 1
                self.progress.personas_done += 1

    async def _persona(self, persona: PersonaView) -> None:
        persona_id = persona.id
        queries: list[str] | None = None
        for cycle in range(self.cycles):
            if (persona_id, cycle) in self.finished:
                self.progress.units_skipped += 1
                question = self.finished[(persona_id, cycle)]
                queries = [question] if question else None
                continue
            if self._stopping:
                self._cut = True
                return
            ok, queries = await self._unit(persona, cycle, queries)
            if not ok:
                # each cycle follows the one before, so the persona's later cycles cannot run now; they
                # get a row each, and --resume retries the failed cycle and then goes on from it
                now = dt.datetime.now(dt.UTC)
                for later in range(cycle + 1, self.cycles):
                    if (persona_id, later) not in self.finished and (persona_id, later) not in self.partial:
                        self._record(persona_id, later, now, "failed", PREVIOUS_FAILED, f"cycle {cycle} failed")
                return

    async def _unit(self, persona: PersonaView, cycle: int, queries: list[str] | None) -> tuple[bool, list[str] | None]:
        """(whether the unit made its conversation, the queries its next cycle follows)"""
        persona_id = persona.id
        started = dt.datetime.now(dt.UTC)
        attempt = self.attempts.get((persona_id, cycle), 0)
        kept = self.partial.pop((persona_id, cycle), None)
        # a kept (partial) conversation stays stored whatever happens now: the unit stays partial, not failed
        failed, made = ("partial", True) if kept is not None else ("failed", False)
        try:
            if kept is not None:
                conversation = await complete(
                    self.models, kept, persona, self.config, recipe=self.recipe, attempt=attempt
                )
            else:
                conversation = await run_cycle(
                    self.models,
                    persona,
                    self.read,
                    self.config,
                    recipe=self.recipe,
                    cycle=cycle,
                    queries=queries,
                    attempt=attempt,
                )
        except (CycleFailed, LLMOutputError) as exc:
            self._record(persona_id, cycle, started, failed, exc.reason, str(exc), self._kept_id(kept, cycle))
            return made, None
        except LLMUnavailable as exc:
            self._record(persona_id, cycle, started, failed, exc.reason, str(exc), self._kept_id(kept, cycle))
            self.fail(str(exc))
            return made, None
        except asyncio.CancelledError:
            self._cut = True
            status = "partial" if kept is not None else "abandoned"
            self._record(persona_id, cycle, started, status, UnitReason.INTERRUPTED, "stopped before it finished")
            raise
        except Exception as exc:  # a bug must not take the swarm down: the unit fails with the traceback kept
            log.exception("unit %s/%s failed", persona_id, cycle)
            detail = "".join(traceback.format_exception_only(exc)).strip()
            self._record(
                persona_id, cycle, started, failed, UnitReason.INTERNAL_ERROR, detail, self._kept_id(kept, cycle)
            )
            return made, None
        conversation.conversation_id = conversation_id(self.run_id, persona_id, cycle)
        self.writer.submit("conversations", conversation.row(self.run_id))  # a completed one replaces its partial
        checked = dt.datetime.now(dt.UTC)  # the checks ran as the unit ended, not when it started
        for result in conversation.quality:
            self.writer.submit(
                "quality", {**result.row(conversation.conversation_id, self.run_id), "checked_at": checked}
            )
        if conversation.failed_steps:  # kept, and what failed said: --resume runs only those steps
            step, failure = next(iter(conversation.failed_steps.items()))
            detail = f"{step}: {failure['detail']}"
            self._record(persona_id, cycle, started, "partial", failure["reason"], detail, conversation.conversation_id)
        else:
            self._record(persona_id, cycle, started, "ok", None, None, conversation.conversation_id)
        return True, conversation.next_queries or None

    def _kept_id(self, kept: Conversation | None, cycle: int) -> str | None:
        return conversation_id(self.run_id, kept.persona_id, cycle) if kept is not None else None

    def _record(
        self,
        persona_id: str,
        cycle: int,
        started: dt.datetime,
        status: str,
        reason: str | None,
        error: str | None,
        conversation: str | None = None,
    ) -> None:
        if status in ("ok", "partial"):
            self.progress.units_ok += 1
        elif status == "failed":
            self.progress.units_failed[reason or "error"] += 1
        self.writer.submit(
            "run_units",
            {
                "run_id": self.run_id,
                "persona_id": persona_id,
                "cycle": cycle,
                "session": self.session,
                "status": status,
                "reason": reason,
                "error": error,
                "conversation_id": conversation,
                "started_at": started,
                "finished_at": dt.datetime.now(dt.UTC),
            },
        )

    def snapshot(self) -> dict[str, Any]:
        p, clients = self.progress, list({id(c): c for c in self.models.values()}.values())
        elapsed = time.monotonic() - p.started
        eta = p.eta_s()
        tokens = sum(c.prompt_tokens + c.completion_tokens for c in clients)
        return {
            "run_id": self.run_id,
            "elapsed_s": round(elapsed, 1),
            "agents_active": p.active,
            "personas": p.personas,
            "personas_done": p.personas_done,
            "units": p.units,
            "conversations": p.units_ok + p.units_skipped,
            "conversations_this_session": p.units_ok,
            "units_failed": dict(p.units_failed),
            "pages_ok": p.pages_ok,
            "pages_failed": dict(p.pages_failed),
            "llm_calls": sum(c.calls for c in clients),
            "llm_calls_cached": sum(c.cached_calls for c in clients),
            "llm_failures": dict(sum((Counter(c.failures) for c in clients), Counter())),
            "tokens": tokens,
            "tokens_per_s": round(tokens / max(elapsed, 1e-9), 1),
            "cost_usd": round(sum(c.cost_usd for c in clients), 6),
            "eta_s": None if eta is None else round(eta, 1),
            "stopping": p.stopping,
        }
