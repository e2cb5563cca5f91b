"""Per-host politeness: at most N connections and one request start per interval, per host.

Each host gets a semaphore (concurrency) and an asyncio-throttle `Throttler(rate_limit=1, period=…)`
(spacing of request starts). The interval is the larger of the user's `--host-rate`, the site's
`Crawl-delay`, and any slowdown a 429 caused; it can change during the crawl, which Throttler allows
because it reads `period` on every acquire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncio_throttle import Throttler


class HostGate:
    def __init__(self, concurrency: int, interval: float):
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self.base_interval = interval
        self.crawl_delay = 0.0
        self.penalty = 0.0  # added by 429s
        self._throttler = Throttler(rate_limit=1, period=self.interval, retry_interval=0.005)

    @property
    def interval(self) -> float:
        return max(self.base_interval, self.crawl_delay, self.penalty)

    def set_crawl_delay(self, seconds: float) -> None:
        self.crawl_delay = max(0.0, seconds)
        self._throttler.period = self.interval

    def slow_down(self, factor: float, ceiling: float) -> None:
        """After a 429: space this host's requests further apart for the rest of the crawl."""
        self.penalty = min(ceiling, max(self.interval, 0.5) * factor)
        self._throttler.period = self.interval

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            if self.interval > 0:
                await self._throttler.acquire()
            yield


class HostGates:
    def __init__(self, concurrency: int, interval: float):
        self.concurrency, self.interval = concurrency, interval
        self._gates: dict[str, HostGate] = {}

    def __getitem__(self, host: str) -> HostGate:
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = HostGate(self.concurrency, self.interval)
        return gate
