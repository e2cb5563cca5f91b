"""Search backends behind one interface, chosen by name (`--search NAME`), configured by environment."""

from __future__ import annotations

from crawler.search.base import SearchBackend, SearchError, SearchHit
from crawler.search.brave import Brave
from crawler.search.duckduckgo import DuckDuckGo
from crawler.search.searxng import SearXNG

BACKENDS: dict[str, type[SearchBackend]] = {"searxng": SearXNG, "duckduckgo": DuckDuckGo, "brave": Brave}


def backend(name: str, *, rate: float = 1.0, concurrency: int = 1) -> SearchBackend:
    """The backend called `name`, configured from the environment; SearchError says what is missing."""
    try:
        cls = BACKENDS[name.lower()]
    except KeyError:
        raise SearchError(name, "not_configured", f"unknown backend; choose one of {', '.join(BACKENDS)}") from None
    return cls(rate=rate, concurrency=concurrency)


__all__ = ["BACKENDS", "Brave", "DuckDuckGo", "SearXNG", "SearchBackend", "SearchError", "SearchHit", "backend"]
