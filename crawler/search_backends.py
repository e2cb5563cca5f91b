"""The search backends `--search NAME` chooses from: the built-ins, and any an installed package adds
through the entry-point group `persona_swarm.search_backends` (docs/extending.md).

A module of its own, without httpx, so that the CLI can list the names in its help and stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.registry import Registry

if TYPE_CHECKING:
    from crawler.search.base import SearchBackend

SEARCH_BACKENDS: Registry[type[SearchBackend]] = Registry(
    "persona_swarm.search_backends",
    "search backend",
    builtins={
        "searxng": "crawler.search.searxng:SearXNG",
        "duckduckgo": "crawler.search.duckduckgo:DuckDuckGo",
        "brave": "crawler.search.brave:Brave",
    },
)
