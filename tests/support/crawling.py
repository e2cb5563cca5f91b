"""A crawl of the test website with politeness off and short timeouts, and its rows by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from crawler import Crawl, CrawlSettings
from storage import BatchWriter, Database

LOOPBACK = ("127.0.0.0/8",)


def fast(**overrides: Any) -> CrawlSettings:
    """Politeness off for the test's own server, short timeouts and backoff so faults finish quickly."""
    base: dict[str, Any] = dict(
        allowed_networks=LOOPBACK,
        host_rate=0,
        host_concurrency=4,
        concurrency=8,
        backoff_base=0.01,
        read_timeout=2.0,
        connect_timeout=2.0,
        extract_workers=1,
        min_text_chars=100,
    )
    base.update(overrides)
    return CrawlSettings(**base)


async def crawl(db_path: Path, seeds: list[str], settings: CrawlSettings) -> dict[str, dict[str, Any]]:
    db = Database(db_path)
    with BatchWriter(db) as writer:
        await Crawl(settings, writer).run(seeds)
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        cursor = con.execute("SELECT * FROM pages")
        names = [d[0] for d in cursor.description]
        return {row[names.index("url")]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    finally:
        con.close()
