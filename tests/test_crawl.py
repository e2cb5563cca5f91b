"""The crawler against the local test website: every attempt is a row with a reason, robots.txt and
Crawl-delay hold (by the server's own log), and nothing reaches a private address without the flag."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crawler.retry import backoff, retry_after_seconds
from tests.support.cli import Cli
from tests.support.crawling import crawl, fast
from tests.support.site_server import Site


@pytest.mark.slow  # every fault page in one crawl, with its retries: ~9 s
async def test_every_fault_is_a_row_with_its_reason(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    cases = {
        "/articles/1.html": None,
        "/status/500": "http_500",
        "/status/404": "http_404",
        "/flaky/500?fail=1": None,
        "/redirect/3": None,
        "/loop/a": "redirect_loop",
        "/drop": "connection_error",
        "/slow?delay=4": "timeout",
        "/big?mb=6": "too_large",
        "/big-chunked?mb=6": "too_large",
        "/bomb": "too_large",
        "/binary": "not_html",
        "/image.png": "not_html",
        "/challenge": "bot_challenge",
        "/js-only": None,  # rendered (--render auto), see below
        "/text.txt": None,
    }
    rows = await crawl(isolated_db, [website.url(p) for p in cases], fast())
    got = {path: rows[website.url(path)]["error"] for path in cases}
    assert got == cases
    assert rows[website.url("/status/500")]["attempts"] == 4, "initial request + 3 retries"
    assert rows[website.url("/flaky/500?fail=1")]["attempts"] == 2
    redirected = rows[website.url("/redirect/3")]
    assert redirected["final_url"] == website.url("/articles/1.html") and redirected["status"] == 200
    article = rows[website.url("/articles/1.html")]
    assert article["title"] and len(article["text"]) > 500 and article["language"] == "en"
    assert article["content_hash"] and article["links"]
    assert rows[website.url("/js-only")]["rendered"] is True and len(rows[website.url("/js-only")]["text"]) > 500
    assert rows[website.url("/articles/1.html")]["rendered"] is False
    # the oversized bodies were cut off, not downloaded: the server never sent the whole 6 MiB
    assert rows[website.url("/big?mb=6")]["bytes"] is None


async def test_429_retry_after_is_honoured_in_both_forms(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    # a date far enough ahead that a slow start (workers forking under load) cannot eat the wait it asks for
    date = email.utils.formatdate(time.time() + 4, usegmt=True)
    seeds = [
        website.url("/flaky/429?fail=1&retry_after=1"),
        website.url(f"/flaky/503?fail=1&retry_after={urllib.parse.quote(date)}"),
    ]
    started = time.monotonic()
    rows = await crawl(isolated_db, seeds, fast())
    assert all(row["error"] is None and row["attempts"] == 2 for row in rows.values())
    for prefix in ("/flaky/429", "/flaky/503"):
        hits = [r.time for r in website.log if r.path.startswith(prefix)]
        assert len(hits) == 2
        assert hits[1] - hits[0] >= 0.9, f"{prefix} was retried after {hits[1] - hits[0]:.2f}s"
    assert time.monotonic() - started < 10


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("7") == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    # the fetcher and the LLM client read one helper: decimals (some APIs send them) count, nonsense does not
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds("-3") is None and retry_after_seconds("nan") is None
    assert retry_after_seconds("inf") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date past is now


def test_backoff_has_full_jitter_under_its_ceiling() -> None:
    waits = [backoff(attempt, 0.5, 30.0) for attempt in range(200) for _ in range(5)]
    assert all(0 <= w <= 30.0 for w in waits)
    assert max(backoff(3, 0.5, 30.0) for _ in range(200)) <= 4.0
    assert len({round(w, 6) for w in waits}) > 900  # jittered, not a fixed schedule


async def test_robots_disallow_and_crawl_delay_hold(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nDisallow: /private/\nCrawl-delay: 0.5\n"
    rows = await crawl(
        isolated_db, [website.url("/articles/1.html"), website.url("/private/secret.html")], fast(depth=1, max_pages=5)
    )
    assert rows[website.url("/private/secret.html")]["error"] == "robots_disallowed"
    assert not any(r.path.startswith("/private/") for r in website.log), "a disallowed page was requested"
    starts = [r.time for r in website.log if r.path != "/robots.txt"]
    assert len(starts) >= 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.45, f"Crawl-delay 0.5 was not kept: {gaps}"


@pytest.mark.parametrize(("robots", "expected"), [("status:404", None), ("status:500", "robots_unavailable")])
async def test_robots_status_rules(website: Site, isolated_db: Path, robots: str, expected: str | None) -> None:
    website.robots = robots
    rows = await crawl(isolated_db, [website.url("/articles/2.html")], fast())
    assert rows[website.url("/articles/2.html")]["error"] == expected
    if expected:
        assert [r.path for r in website.log] == ["/robots.txt"], "no page may be fetched while robots.txt fails"


def test_private_addresses_are_refused_without_the_flag(cli: Cli, website: Site, isolated_db: Path) -> None:
    code, out, err = cli("crawl", website.url("/articles/1.html"), "--quiet")
    assert code == 0, err
    assert "blocked_private_address" in out
    assert website.log == [], "no request may reach a loopback address without --allow-private"
    code, out, err = cli("crawl", website.url("/articles/1.html"), "--quiet", "--allow-private", "--host-rate", "0")
    assert code == 0 and "1 ok" in out
    con = duckdb.connect(str(isolated_db), read_only=True)
    errors = con.execute("SELECT error FROM pages ORDER BY fetched_at").fetchall()
    con.close()
    assert errors == [("blocked_private_address",), (None,)]


async def test_a_redirect_to_a_private_address_is_refused_at_that_hop(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    # only loopback is allowed here; the redirect points at a private address, which must never be dialled
    seed = website.url("/redirect-to?url=http%3A%2F%2F10.255.255.1%2Fsecret")
    rows = await crawl(isolated_db, [seed], fast())
    assert rows[seed]["error"] == "blocked_private_address"
    assert "10.255.255.1" in rows[seed]["error_detail"]


async def test_mis_declared_and_undeclared_charsets_are_read_right(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    rows = await crawl(
        isolated_db, [website.url("/latin1"), website.url("/cp1252-undeclared")], fast(min_text_chars=20)
    )
    latin = rows[website.url("/latin1")]
    assert latin["error"] is None and "café" in latin["text"] and "\ufffd" not in latin["text"]
    cp = rows[website.url("/cp1252-undeclared")]
    assert cp["error"] is None and "€" in cp["text"]


async def test_sitemap_index_with_a_gzipped_child_and_feeds_seed_the_crawl(websites: Any, isolated_db: Path) -> None:
    site = websites(articles=12)
    site.robots = "User-agent: *\nAllow: /\n"
    rows = await crawl(isolated_db, [site.url("/sitemap_index.xml")], fast())
    articles = {site.url(f"/articles/{n}.html") for n in range(1, 13)}
    assert articles <= {url for url, row in rows.items() if row["error"] is None}
    assert rows[site.url("/sitemap-b.xml.gz")]["error"] is None
    other = websites(articles=12)
    other.robots = "User-agent: *\nAllow: /\n"
    for feed in ("/feed.xml", "/atom.xml"):
        rows = await crawl(isolated_db, [other.url(feed)], fast())
        assert rows[other.url(feed)]["error"] is None
        assert len([u for u in rows if u.startswith(other.url("/articles/"))]) == 10


async def test_links_are_followed_to_the_depth_on_the_same_site_only(websites: Any, isolated_db: Path) -> None:
    a, b = websites(articles=6), websites(articles=6)
    for site in (a, b):
        site.robots = "User-agent: *\nAllow: /\n"
    rows = await crawl(isolated_db, [a.url("/")], fast(depth=1))
    assert all(url.startswith(a.base) for url in rows) and len(rows) > 3
    assert b.log == []
    assert {row["depth"] for row in rows.values()} == {0, 1}


def _chromium_pids() -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"chromium" in (proc / "cmdline").read_bytes():
                    pids.add(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow  # starts Chromium
async def test_render_never_and_always_and_no_browser_outlives_the_crawl(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    before = _chromium_pids()
    rows = await crawl(isolated_db, [website.url("/js-only")], fast(render="never"))
    assert rows[website.url("/js-only")]["error"] == "too_short"
    rows = await crawl(isolated_db, [website.url("/articles/3.html")], fast(render="always"))
    assert rows[website.url("/articles/3.html")]["rendered"] is True
    deadline = time.monotonic() + 5  # the browser's helper processes take a moment to exit
    while _chromium_pids() - before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _chromium_pids() - before == set(), "a Chromium process outlived the crawl"


async def test_exact_and_near_duplicate_pages_are_flagged(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    first, near, exact, other = (
        website.url(p) for p in ("/articles/1.html", "/near-copy", "/private/secret.html", "/articles/2.html")
    )
    rows = await crawl(isolated_db, [first, near, exact, other], fast(concurrency=1))
    original = rows[first]["page_id"]
    assert rows[exact]["duplicate_of"] == original and rows[exact]["content_hash"] == rows[first]["content_hash"]
    assert rows[near]["duplicate_of"] == original and rows[near]["content_hash"] != rows[first]["content_hash"]
    assert json.loads(rows[near]["metadata"])["near_duplicate"] >= 0.8
    assert rows[other]["duplicate_of"] is None and rows[first]["duplicate_of"] is None


def test_a_language_filter_rejects_other_languages(cli: Cli, website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    code, _, err = cli(
        "crawl",
        website.url("/articles/1.html"),
        "--allow-private",
        "--host-rate",
        "0",
        "--render",
        "never",
        "--language",
        "de",
        "--quiet",
    )
    assert code == 0, err
    con = duckdb.connect(str(isolated_db), read_only=True)
    rows = con.execute("SELECT error, language FROM pages").fetchall()
    con.close()
    assert rows == [("wrong_language", "en")]


@pytest.mark.slow  # starts Chromium
def test_render_flag_reaches_the_crawl(cli: Cli, website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    for mode, expected in (("never", ("too_short", False)), ("auto", (None, True))):
        code, _, err = cli(
            "crawl", website.url("/js-only"), "--allow-private", "--host-rate", "0", "--render", mode, "--quiet"
        )
        assert code == 0, err
        con = duckdb.connect(str(isolated_db), read_only=True)
        rows = con.execute("SELECT error, rendered FROM pages ORDER BY fetched_at DESC LIMIT 1").fetchall()
        con.close()
        assert rows == [expected], mode
    code, _, err = cli("crawl", website.url("/js-only"), "--render", "sometimes")
    assert code == 2 and "--render must be" in err
