"""Turning a fetch + extraction into a `pages` row, with the quality gates and exact-duplicate check."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from crawler import reasons
from crawler.extract import Extracted
from crawler.fetch import FetchResult, looks_like_challenge
from crawler.settings import CrawlSettings
from crawler.urls import host_key
from storage.minhash import NearDuplicates

_SPACE = re.compile(r"\s+")


def content_hash(text: str) -> str:
    return hashlib.sha1(_SPACE.sub(" ", text).strip().lower().encode("utf-8")).hexdigest()


@dataclass
class PageRow:
    url: str
    depth: int
    crawl_id: str | None
    page_id: str = field(default_factory=lambda: "pg_" + secrets.token_hex(8))
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.fields.get("error") is None

    def row(self) -> dict[str, Any]:
        return {
            "page_id": self.page_id,
            "crawl_id": self.crawl_id,
            "url": self.url,
            "host": host_key(self.url),
            "depth": self.depth,
            "fetched_at": dt.datetime.now(dt.UTC),
            **self.fields,
        }


def from_fetch(page: PageRow, fetched: FetchResult) -> None:
    page.fields.update(
        final_url=fetched.final_url,
        status=fetched.status,
        content_type=fetched.content_type,
        elapsed_ms=round(fetched.elapsed * 1000, 1),
        attempts=fetched.attempts,
        bytes=len(fetched.body) if fetched.body is not None else None,
        error=fetched.error,
        error_detail=fetched.detail,
        rendered=False,
        metadata={**fetched.notes, **({"redirects": fetched.redirects} if fetched.redirects else {})} or None,
    )


def quality_gate(settings: CrawlSettings, html: bytes, extracted: Extracted) -> tuple[str, str] | None:
    """The reason a page that was fetched and extracted is still not worth keeping, if any."""
    if extracted.error:
        return extracted.error, extracted.detail or ""
    if looks_like_challenge(html):
        return reasons.BOT_CHALLENGE, "the page is a bot challenge, not content"
    if len(extracted.text) < settings.min_text_chars:
        return reasons.TOO_SHORT, f"{len(extracted.text)} characters of text (< {settings.min_text_chars})"
    if settings.languages and extracted.language and extracted.language not in settings.languages:
        return reasons.WRONG_LANGUAGE, f"language {extracted.language} not in {', '.join(settings.languages)}"
    return None


def from_extraction(
    page: PageRow, extracted: Extracted, charset: str | None, seen: dict[str, str], near: NearDuplicates[str]
) -> None:
    digest = content_hash(extracted.text) if extracted.text else None
    metadata = dict(page.fields.get("metadata") or {})
    metadata.update(extracted.metadata)
    page.fields.update(
        title=extracted.title,
        text=extracted.text or None,
        language=extracted.language,
        charset=charset,
        metadata=metadata or None,
        links=extracted.links,
        content_hash=digest,
    )
    if digest is not None:
        first = seen.setdefault(digest, page.page_id)
        if first != page.page_id:
            page.fields["duplicate_of"] = first
            return
    similar = near.match(extracted.minhash)
    near.add(page.page_id, extracted.minhash)
    if similar is not None:
        page.fields["duplicate_of"] = similar[0]
        page.fields["metadata"] = {**(page.fields.get("metadata") or {}), "near_duplicate": round(similar[1], 3)}
