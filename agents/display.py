"""What a run shows while it works: the Display a command passes in, and a guard so that a display
failing (`swarm run --json | head` closes stdout) can never stop a run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agents.swarm import Swarm

log = logging.getLogger(__name__)


class Display(Protocol):
    def started(self, run_id: str, swarm: Swarm, resumed: bool) -> None: ...
    def tick(self, swarm: Swarm) -> None: ...
    def stopping(self, swarm: Swarm, second: bool) -> None: ...
    def finished(self, record: dict[str, Any]) -> None: ...


class Guarded:
    """A display that cannot stop a run: a run must still end with its row written. The first failure
    is logged; the display then goes quiet."""

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
