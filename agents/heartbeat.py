"""A running run's heartbeat: its row kept fresh, its display moving, and the run stopped when it can
no longer be written or another process has taken it over."""

from __future__ import annotations

import asyncio
import logging
import time

from agents.display import Display
from agents.runs import HEARTBEAT_S, RunStore
from agents.swarm import Swarm
from storage import BatchWriter

log = logging.getLogger(__name__)


async def heartbeat(
    store: RunStore, run_id: str, session: int, swarm: Swarm, writer: BatchWriter, display: Display, elapsed: float
) -> None:
    """Until cancelled: tick the display twice a second and update the row every HEARTBEAT_S (so the
    run is not taken for dead; `elapsed` is the work time of earlier sessions). Stop the run when the
    database refuses writes (the rows are in the dead-letter file; nothing more should pile up) or when
    another process has taken the run over (a `--resume` of a run it wrongly took for dead)."""
    started = last = time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        display.tick(swarm)
        if writer.failure is not None and swarm.failure is None:
            swarm.fail(f"writing to the database failed: {writer.failure}")
        if time.monotonic() - last >= HEARTBEAT_S:
            last = time.monotonic()
            try:
                ours = await asyncio.to_thread(store.heartbeat, run_id, session, elapsed + last - started)
            except Exception as exc:  # a busy file delays a heartbeat; the run goes on
                log.warning("heartbeat skipped: %s", exc)
                continue
            if not ours and swarm.failure is None:
                swarm.fail(f"run {run_id} was resumed by another process (session {session} is no longer its own)")
