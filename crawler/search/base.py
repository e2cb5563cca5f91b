"""One interface for web search: `await backend.search(query, count)` → ranked `SearchHit`s.

The endpoint and its key come from the environment (a user configures their own SearXNG, or a Brave
key); they are the user's configuration, not links found on the web, so the SSRF guard does not apply
to them (a self-hosted SearXNG on localhost is the normal case). Requests to a backend are spaced by
its own rate limit, and every failure is a `SearchError` with a reason code and what to do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

import httpx

from crawler.hosts import HostGate
from crawler.settings import USER_AGENT
from storage.errors import SwarmError


@dataclass(frozen=True)
class SearchHit:
    url: str
    title: str
    snippet: str
    rank: int
    engine: str


class SearchReason(StrEnum):
    RATE_LIMITED = "rate_limited"
    BLOCKED = "blocked"  # a bot wall or a refusal
    BAD_KEY = "bad_key"
    NOT_CONFIGURED = "not_configured"  # a setting is missing, or no such backend
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad_response"


class SearchError(SwarmError):
    def __init__(self, backend: str, reason: SearchReason, message: str):
        super().__init__(f"{backend} search: {message}", reason=reason)
        self.backend = backend


class SearchBackend(ABC):
    name = "search"

    def __init__(
        self,
        *,
        rate: float = 1.0,
        concurrency: int = 1,
        timeout: float = 15.0,
        client: httpx.AsyncClient | None = None,
    ):
        self.client = client or httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=True
        )
        self._owns_client = client is None
        # one query at a time, one a second by default: polite to a shared instance or a paid API
        self.gate = HostGate(concurrency=max(1, concurrency), interval=0 if rate <= 0 else 1 / rate)

    @abstractmethod
    async def search(self, query: str, count: int = 10) -> list[SearchHit]:
        """Up to `count` hits for `query`, best first."""

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The request sent within the rate limit; a timeout or a connection failure is `unavailable`."""
        try:
            async with self.gate.slot():
                return await self.client.send(request)
        except httpx.TimeoutException as exc:
            raise SearchError(self.name, SearchReason.UNAVAILABLE, f"{request.url.host} timed out") from exc
        except httpx.TransportError as exc:
            raise SearchError(self.name, SearchReason.UNAVAILABLE, f"cannot reach {request.url.host}: {exc}") from exc
