"""One limiter per endpoint, shared by every agent: requests in flight, requests/min and tokens/min.

Adaptive: a 429 halves the number of requests allowed in flight and pauses everyone for its
Retry-After; each run of successes as long as the current limit grows it back by one, up to the
configured maximum (additive increase, multiplicative decrease, as TCP does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class _Bucket:
    """A token bucket refilled at `per_minute` per minute; `per_minute` 0 means no limit."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = per_minute
        self.tokens = per_minute
        self.updated = time.monotonic()

    async def take(self, amount: float) -> None:
        if self.rate <= 0:
            return
        amount = min(amount, self.capacity)
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= amount:
                self.tokens -= amount
                return
            await asyncio.sleep((amount - self.tokens) / self.rate)


class AdaptiveLimiter:
    def __init__(self, max_concurrency: int, requests_per_minute: float = 0.0, tokens_per_minute: float = 0.0):
        self.ceiling = max(1, max_concurrency)
        self.limit = self.ceiling
        self.in_flight = 0
        self.paused_until = 0.0
        self._successes = 0
        self._cond = asyncio.Condition()
        self._requests = _Bucket(requests_per_minute)
        self._tokens = _Bucket(tokens_per_minute)

    @asynccontextmanager
    async def slot(self, estimated_tokens: int = 0) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        try:
            while (wait := self.paused_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await self._requests.take(1)
            await self._tokens.take(estimated_tokens)
            yield
        finally:
            async with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    def rate_limited(self, retry_after: float) -> None:
        self.limit = max(1, self.limit // 2)
        self._successes = 0
        self.paused_until = max(self.paused_until, time.monotonic() + retry_after)

    async def succeeded(self) -> None:
        self._successes += 1
        if self.limit < self.ceiling and self._successes >= self.limit:
            self._successes = 0
            async with self._cond:
                self.limit += 1
                self._cond.notify_all()
