"""SearXNG's JSON API (`GET /search?q=…&format=json`), the open, self-hostable default.

Settings: SEARXNG_URL (required, e.g. http://localhost:8888), SEARXNG_LANGUAGE (default `en`),
SEARXNG_TOKEN (optional bearer token for instances behind a proxy).
"""

from __future__ import annotations

import os

from crawler.search.base import SearchBackend, SearchError, SearchHit, SearchReason


class SearXNG(SearchBackend):
    name = "searxng"

    def __init__(
        self, base_url: str | None = None, *, language: str | None = None, token: str | None = None, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        base_url = base_url or os.environ.get("SEARXNG_URL")
        if not base_url:
            raise SearchError(
                self.name,
                SearchReason.NOT_CONFIGURED,
                "set SEARXNG_URL to your instance, e.g. export SEARXNG_URL=http://localhost:8888",
            )
        self.base_url = base_url.rstrip("/")
        self.language = language or os.environ.get("SEARXNG_LANGUAGE", "en")
        self.token = token or os.environ.get("SEARXNG_TOKEN")

    async def search(self, query: str, count: int = 10) -> list[SearchHit]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = self.client.build_request(
            "GET",
            f"{self.base_url}/search",
            headers=headers,
            params={"q": query, "format": "json", "categories": "general", "language": self.language},
        )
        response = await self.send(request)
        if response.status_code == 403:
            raise SearchError(
                self.name,
                SearchReason.NOT_CONFIGURED,
                f"{self.base_url} refuses format=json: add json to search.formats in its settings.yml",
            )
        if response.status_code == 429:
            raise SearchError(
                self.name,
                SearchReason.RATE_LIMITED,
                f"{self.base_url} is rate limiting (its limiter is on); use your own instance or slow down",
            )
        if response.status_code != 200:
            raise SearchError(
                self.name, SearchReason.UNAVAILABLE, f"{self.base_url} answered HTTP {response.status_code}"
            )
        try:
            results = response.json().get("results", [])
        except ValueError as exc:
            raise SearchError(self.name, SearchReason.BAD_RESPONSE, f"{self.base_url} did not answer JSON") from exc
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for item in results:
            url = item.get("url") if isinstance(item, dict) else None
            if not url or url in seen or item.get("template", "default.html") != "default.html":
                continue
            seen.add(url)
            hits.append(
                SearchHit(
                    url,
                    item.get("title") or "",
                    item.get("content") or "",
                    len(hits) + 1,
                    item.get("engine") or self.name,
                )
            )
        return hits[:count]
