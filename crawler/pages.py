"""Turning a fetch + extraction into a `pages` row, with the quality gates and exact-duplicate check."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field, fields
from typing import Any

from crawler.extract import Extracted
from crawler.fetch import FetchResult, looks_like_challenge
from crawler.reasons import Reason
from crawler.settings import CrawlSettings
from crawler.urls import host_key
from storage.minhash import NearDuplicates
from storage.sql import new_id

_SPACE = re.compile(r"\s+")


def content_hash(text: str) -> str:
    return hashlib.sha1(_SPACE.sub(" ", text).strip().lower().encode("utf-8")).hexdigest()


@dataclass
class PageRow:
    """One `pages` row (the columns in storage/migrations.py), filled in as the URL goes through fetch,
    decoding, extraction and the quality gates."""

    url: str
    depth: int
    run_id: str | None  # the swarm run or `swarm crawl` that met the URL
    page_id: str = field(default_factory=lambda: new_id("pg"))
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    elapsed_ms: float | None = None
    attempts: int | None = None
    bytes: int | None = None
    charset: str | None = None
    rendered: bool = False
    title: str | None = None
    text: str | None = None
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    links: list[str] | None = None
    content_hash: str | None = None
    duplicate_of: str | None = None
    error: str | None = None
    error_detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, reason: str, detail: str) -> None:
        self.error, self.error_detail = reason, detail

    def row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row.update(host=host_key(self.url), fetched_at=dt.datetime.now(dt.UTC), metadata=self.metadata or None)
        return row


def from_fetch(page: PageRow, fetched: FetchResult) -> None:
    page.final_url, page.status, page.content_type = fetched.final_url, fetched.status, fetched.content_type
    page.elapsed_ms, page.attempts = round(fetched.elapsed * 1000, 1), fetched.attempts
    page.bytes = len(fetched.body) if fetched.body is not None else None
    page.error, page.error_detail = fetched.error, fetched.detail
    page.metadata.update(fetched.notes)
    if fetched.redirects:
        page.metadata["redirects"] = fetched.redirects


def quality_gate(settings: CrawlSettings, html: bytes, extracted: Extracted) -> tuple[str, str] | None:
    """The reason a page that was fetched and extracted is still not worth keeping, if any."""
    if extracted.error:
        return extracted.error, extracted.detail or ""
    if looks_like_challenge(html):
        return Reason.BOT_CHALLENGE, "the page is a bot challenge, not content"
    if len(extracted.text) < settings.min_text_chars:
        return Reason.TOO_SHORT, f"{len(extracted.text)} characters of text (< {settings.min_text_chars})"
    if settings.languages and extracted.language and extracted.language not in settings.languages:
        return Reason.WRONG_LANGUAGE, f"language {extracted.language} not in {', '.join(settings.languages)}"
    return None


def from_extraction(
    page: PageRow, extracted: Extracted, charset: str | None, seen: dict[str, str], near: NearDuplicates[str]
) -> None:
    page.title, page.text, page.language = extracted.title, extracted.text or None, extracted.language
    page.charset, page.links = charset, extracted.links
    page.metadata.update(extracted.metadata)
    page.content_hash = content_hash(extracted.text) if extracted.text else None
    if page.content_hash is not None:
        first = seen.setdefault(page.content_hash, page.page_id)
        if first != page.page_id:
            page.duplicate_of = first
            return
    similar = near.match(extracted.minhash)
    near.add(page.page_id, extracted.minhash)
    if similar is not None:
        page.duplicate_of = similar[0]
        page.metadata["near_duplicate"] = round(similar[1], 3)
