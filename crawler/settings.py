"""Every crawl default in one place, each with why; `swarm crawl` flags override them.

settings = CrawlSettings(host_rate=0, host_concurrency=8, allow_private=True)   # "this host is mine"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

USER_AGENT = "persona-swarm/0.1 (+https://pypi.org/project/persona-swarm/; research crawler, obeys robots.txt)"


@dataclass
class CrawlSettings:
    user_agent: str = USER_AGENT
    host_rate: float = 1.0  # request starts per second per host; 0 = unlimited (robots.txt still holds)
    host_concurrency: int = 2  # connections at once per host
    concurrency: int = 64  # pages in flight across all hosts
    robots_ttl: float = 24 * 3600  # RFC 9309: a cached robots.txt should not be used for more than 24 h
    robots_retry: float = 300.0  # after a 5xx/unreachable robots.txt the host is disallowed this long
    max_retries: int = 3  # initial request + 3 retries = 4 requests at most
    backoff_base: float = 0.5  # seconds; doubled each retry, with full jitter
    backoff_max: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After is not waited for: the page fails instead
    slowdown_429: float = 2.0  # a 429 multiplies that host's interval by this (up to max_host_interval)
    max_host_interval: float = 60.0
    max_bytes: int = 5 * 1024 * 1024  # decoded body cap; streamed and cut off, never fully downloaded
    max_redirects: int = 10
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # between two reads: a server dripping a byte at a time never trips it, so …
    # … one URL's fetch has this much network time in all (headers and bodies, redirects and retries;
    # waiting for the host's turn is not counted), then it fails as a timeout
    fetch_deadline: float = 60.0
    # a longer robots.txt Crawl-delay is capped, and the row says so: one page every 30 s is ~2,900 a day,
    # while `Crawl-delay: 100000` would park the crawl on that host for a day a page
    max_crawl_delay: float = 30.0
    content_types: tuple[str, ...] = ("text/html", "application/xhtml+xml", "text/plain")
    allow_private: bool = False  # refuse loopback/private/link-local/multicast/reserved addresses
    allowed_networks: tuple[str, ...] = ()  # exceptions to the rule above (tests allow 127.0.0.0/8 only)
    depth: int = 0  # links followed from the seeds
    same_site: bool = True  # follow links only within the seed's host
    max_pages: int | None = None
    extract_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    extract_timeout: float = 30.0  # seconds per page in the extraction process
    min_text_chars: int = 200  # quality gate: shorter extracted text is "too_short"
    render: str = "auto"  # never | auto (when the HTML yields too little text) | always
    render_contexts: int = 2  # browser contexts at once: each is ~100 MB of Chromium
    render_timeout: float = 20.0
    browser: str | None = None  # Chromium executable; found on PATH when not given
    languages: tuple[str, ...] = ()  # quality gate: keep only these languages when set

    def host_interval(self) -> float:
        return 0.0 if self.host_rate <= 0 else 1.0 / self.host_rate
