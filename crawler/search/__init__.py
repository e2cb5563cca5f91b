"""Search backends behind one interface, chosen by name (`--search NAME`, SEARCH_BACKENDS), configured by
environment."""

from __future__ import annotations

from crawler.search.base import SearchBackend, SearchError, SearchHit, SearchReason
from crawler.search.brave import Brave
from crawler.search.duckduckgo import DuckDuckGo
from crawler.search.searxng import SearXNG
from crawler.search_backends import SEARCH_BACKENDS
from storage.registry import UnknownName


def backend(name: str, *, rate: float = 1.0, concurrency: int = 1) -> SearchBackend:
    """The backend called `name`, configured from the environment; SearchError says what is missing."""
    try:
        cls = SEARCH_BACKENDS.get(name)
    except UnknownName as exc:
        raise SearchError(name, SearchReason.NOT_CONFIGURED, str(exc)) from None
    return cls(rate=rate, concurrency=concurrency)


__all__ = ["SEARCH_BACKENDS", "Brave", "DuckDuckGo", "SearXNG", "SearchBackend", "SearchError", "SearchHit", "backend"]
