"""Crawler: discovery, polite fetching, rendering and extraction (see DESIGN.md)."""

from crawler.crawl import Crawl, CrawlStats, new_crawl_id
from crawler.fetch import Fetcher, FetchResult
from crawler.settings import USER_AGENT, CrawlSettings

__all__ = ["USER_AGENT", "Crawl", "CrawlSettings", "CrawlStats", "FetchResult", "Fetcher", "new_crawl_id"]
