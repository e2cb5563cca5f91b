"""Ctrl-C and SIGTERM during a run: the first stops new work and lets units in flight finish, a second
abandons them; while the run ends, a signal only stops the writer from waiting on a locked file."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from agents.display import Display
from agents.swarm import Swarm
from storage import BatchWriter

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# what add/remove_signal_handler raise where handlers cannot be set: Windows' loops, a thread that is
# not the main one, a closed loop; a run there simply has no Ctrl-C handling of its own
_NO_HANDLERS = (NotImplementedError, RuntimeError, ValueError)


def stop_on_signal(loop: asyncio.AbstractEventLoop, swarm: Swarm, display: Display) -> None:
    for sig in _SIGNALS:
        name = signal.Signals(sig).name

        def handle(name: str = name) -> None:
            second = swarm.progress.stopping is not None
            swarm.stop(f"interrupted ({name})")
            display.stopping(swarm, second)

        with contextlib.suppress(*_NO_HANDLERS):
            loop.add_signal_handler(sig, handle)


def protect_ending(loop: asyncio.AbstractEventLoop, writer: BatchWriter) -> None:
    """While a run ends, a signal does not cut the last writes short; it only stops the writer from
    waiting out a database file another process holds (those rows go to the dead-letter file). The
    handlers are removed once the run has returned (`remove`)."""
    for sig in _SIGNALS:
        with contextlib.suppress(*_NO_HANDLERS):
            loop.add_signal_handler(sig, writer.stop_waiting)


def remove() -> None:
    with contextlib.suppress(RuntimeError):
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            with contextlib.suppress(*_NO_HANDLERS):
                loop.remove_signal_handler(sig)
