"""Brave Search's web API (`GET /res/v1/web/search`), with a subscription key.

Settings: BRAVE_API_KEY (required), BRAVE_API_URL (default https://api.search.brave.com).
"""

from __future__ import annotations

import os
import re

from crawler.search.base import SearchBackend, SearchError, SearchHit, SearchReason

_TAGS = re.compile(r"</?strong>")


class Brave(SearchBackend):
    name = "brave"

    def __init__(self, api_key: str | None = None, *, base_url: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.api_key = api_key or os.environ.get("BRAVE_API_KEY")
        if not self.api_key:
            raise SearchError(self.name, SearchReason.NOT_CONFIGURED, "set BRAVE_API_KEY to your Brave Search API key")
        self.base_url = (base_url or os.environ.get("BRAVE_API_URL", "https://api.search.brave.com")).rstrip("/")

    async def search(self, query: str, count: int = 10) -> list[SearchHit]:
        request = self.client.build_request(
            "GET",
            f"{self.base_url}/res/v1/web/search",
            headers={"X-Subscription-Token": self.api_key or "", "Accept": "application/json"},
            params={"q": query[:400], "count": max(1, min(20, count))},
        )
        response = await self.send(request)
        if response.status_code == 429:
            reset = response.headers.get("x-ratelimit-reset", "").split(",")[0].strip()
            raise SearchError(
                self.name, SearchReason.RATE_LIMITED, f"rate limit reached; the window refills in {reset or '?'}s"
            )
        if response.status_code in (401, 403, 422):
            code = _error_code(response)
            if code == "SUBSCRIPTION_TOKEN_INVALID" or response.status_code in (401, 403):
                raise SearchError(self.name, SearchReason.BAD_KEY, "BRAVE_API_KEY was refused; check the key")
            raise SearchError(self.name, SearchReason.BAD_RESPONSE, f"request refused ({code or response.status_code})")
        if response.status_code != 200:
            raise SearchError(self.name, SearchReason.UNAVAILABLE, f"HTTP {response.status_code}")
        try:
            results = (response.json().get("web") or {}).get("results", [])
        except ValueError as exc:
            raise SearchError(self.name, SearchReason.BAD_RESPONSE, "the answer was not JSON") from exc
        hits: list[SearchHit] = []
        for item in results:
            if isinstance(item, dict) and item.get("url"):
                hits.append(
                    SearchHit(
                        item["url"],
                        _TAGS.sub("", item.get("title") or ""),
                        _TAGS.sub("", item.get("description") or ""),
                        len(hits) + 1,
                        self.name,
                    )
                )
        return hits[:count]


def _error_code(response: object) -> str | None:
    try:
        return str(response.json()["error"]["code"])  # type: ignore[attr-defined]
    except (ValueError, KeyError, TypeError):
        return None
