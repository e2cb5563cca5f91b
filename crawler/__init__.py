"""Crawler: discovery, polite fetching, rendering and extraction.

The names below are loaded on first use, not on `import crawler`: an extraction worker imports
`crawler.extract` and needs trafilatura, not httpx, DuckDB and Arrow (1.1 s and ~125 MB a process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.lazy import lazy_names

if TYPE_CHECKING:
    from crawler.crawl import Crawl, CrawlStats, new_crawl_id
    from crawler.fetch import Fetcher, FetchResult
    from crawler.settings import USER_AGENT, CrawlSettings

_WHERE = {
    "Crawl": "crawler.crawl",
    "CrawlStats": "crawler.crawl",
    "new_crawl_id": "crawler.crawl",
    "Fetcher": "crawler.fetch",
    "FetchResult": "crawler.fetch",
    "USER_AGENT": "crawler.settings",
    "CrawlSettings": "crawler.settings",
}

__getattr__ = lazy_names("crawler", _WHERE)


__all__ = ["USER_AGENT", "Crawl", "CrawlSettings", "CrawlStats", "FetchResult", "Fetcher", "new_crawl_id"]
