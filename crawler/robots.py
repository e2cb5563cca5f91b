"""robots.txt with protego, cached per host for up to 24 h, with RFC 9309's status rules:

- 2xx: parse it (Disallow, Allow, Crawl-delay, Sitemap);
- 4xx (but 429): there are no rules, everything is allowed;
- 5xx, 429 or no answer: the site is unreachable, so everything is disallowed for now and the file is
  asked for again after `robots_retry` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from protego import Protego

from crawler import reasons
from crawler.reasons import Reason
from crawler.urls import host_key

# fetch(url) -> (status or None, body text, error reason or None)
RobotsFetch = Callable[[str], Awaitable[tuple[int | None, str, str | None]]]


@dataclass
class RobotsRules:
    parser: Protego | None  # None: no rules (everything allowed) or unreachable (see `unreachable`)
    expires: float
    unreachable: str | None = None  # the reason everything is disallowed for now
    sitemaps: list[str] = field(default_factory=list)

    def allowed(self, url: str, user_agent: str) -> bool:
        if self.unreachable:
            return False
        return True if self.parser is None else bool(self.parser.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay else 0.0


class RobotsCache:
    def __init__(self, fetch: RobotsFetch, user_agent: str, ttl: float, retry: float):
        self._fetch, self.user_agent, self.ttl, self.retry = fetch, user_agent, ttl, retry
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def rules_for(self, url: str) -> RobotsRules:
        """The rules for `url`'s host, fetched once per host however many tasks ask at the same time."""
        host = host_key(url)
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            rules = self._rules.get(host)
            if rules is None or rules.expires <= time.monotonic():
                rules = self._rules[host] = await self._load(url)
            return rules

    async def _load(self, url: str) -> RobotsRules:
        robots_url = str(httpx.URL(url).copy_with(path="/robots.txt", query=None, fragment=None))
        status, body, error = await self._fetch(robots_url)
        now = time.monotonic()
        if error == Reason.BLOCKED_PRIVATE:
            return RobotsRules(None, now + self.ttl, unreachable=error)
        if status is None or status == 429 or status >= 500:
            why = error or reasons.http(status or 0)
            return RobotsRules(None, now + self.retry, unreachable=f"{Reason.ROBOTS_UNAVAILABLE}:{why}")
        if 400 <= status < 500:
            return RobotsRules(None, now + self.ttl)
        parser = Protego.parse(body)
        return RobotsRules(parser, now + self.ttl, sitemaps=list(parser.sitemaps))
