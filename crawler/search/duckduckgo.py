"""DuckDuckGo's HTML results page (`POST /html/`), parsed with lxml.

Settings: DDG_HTML_URL (default https://html.duckduckgo.com/html/), DDG_REGION (default us-en).
DuckDuckGo answers fast clients with HTTP 202 and a challenge page; that is reported as `blocked`,
never parsed as "no results".
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import lxml.html

from crawler.search.base import SearchBackend, SearchError, SearchHit, SearchReason

_BLOCK_MARKERS = ("anomaly-modal", "anomaly.js", "error-lite@duckduckgo.com", 'id="challenge-form"')


def result_url(href: str) -> str | None:
    """The target of a result link: direct, or wrapped as //duckduckgo.com/l/?uddg=<url>."""
    if href.startswith("//"):
        href = "https:" + href
    parts = urlsplit(href)
    if parts.path.startswith("/l/"):
        target = parse_qs(parts.query).get("uddg", [None])[0]
        return target
    if parts.netloc.endswith("duckduckgo.com") and parts.path.startswith("/y.js"):
        return None  # an ad
    return href if parts.scheme in ("http", "https") else None


def parse_results(html: str) -> list[tuple[str, str, str]]:
    root = lxml.html.fromstring(html)
    out = []
    for result in root.xpath('//div[contains(concat(" ", normalize-space(@class), " "), " result ")]'):
        classes = result.get("class", "")
        if "result--ad" in classes or "result--no-result" in classes:
            continue
        links = result.xpath('.//a[contains(@class, "result__a")]')
        if not links:
            continue
        url = result_url(links[0].get("href", ""))
        title = links[0].text_content().strip()
        if not url or (title == "EOF" and "google.com/search" in url):
            continue
        snippet = result.xpath('.//*[contains(@class, "result__snippet")]')
        out.append((url, title, snippet[0].text_content().strip() if snippet else ""))
    return out


class DuckDuckGo(SearchBackend):
    name = "duckduckgo"

    def __init__(self, base_url: str | None = None, *, region: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.base_url = base_url or os.environ.get("DDG_HTML_URL", "https://html.duckduckgo.com/html/")
        self.region = region or os.environ.get("DDG_REGION", "us-en")

    async def search(self, query: str, count: int = 10) -> list[SearchHit]:
        request = self.client.build_request(
            "POST",
            self.base_url,
            data={"q": query[:499], "b": "", "kl": self.region},
            headers={"Referer": self.base_url},
        )
        response = await self.send(request)
        text = response.text
        if response.status_code == 202 or any(marker in text for marker in _BLOCK_MARKERS):
            raise SearchError(
                self.name,
                SearchReason.BLOCKED,
                "DuckDuckGo answered with its bot challenge; wait a while, "
                "slow down, or use SearXNG ({--search} searxng)",
            )
        if response.status_code in (403, 418, 429):
            raise SearchError(self.name, SearchReason.RATE_LIMITED, f"DuckDuckGo answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise SearchError(self.name, SearchReason.UNAVAILABLE, f"HTTP {response.status_code}")
        seen: set[str] = set()
        hits: list[SearchHit] = []
        for url, title, snippet in parse_results(text):
            if url not in seen:
                seen.add(url)
                hits.append(SearchHit(url, title, snippet, len(hits) + 1, self.name))
        return hits[:count]
