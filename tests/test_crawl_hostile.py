"""The crawler against a hostile web: every URL it meets ends as a row with a reason, no page can kill
a worker or hang the crawl, and slow or absurd servers are cut off by deadlines and caps."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crawler import Crawl, Fetcher, FetchResult
from crawler.guard import address_kind
from crawler.urls import canonical
from storage import BatchWriter, Database
from tests.support.cli import Cli
from tests.support.crawling import crawl, fast
from tests.support.site_server import Site, prose


def redirect_to(site: Site, location: str) -> str:
    return site.url("/redirect-to?url=" + urllib.parse.quote(location, safe=""))


async def test_unfetchable_urls_and_redirects_end_as_rows_and_the_crawl_ends(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    bad_redirects = [
        "data:text/html,<h1>hi</h1>",
        "javascript:alert(1)",
        "mailto:a@b.example",
        "tel:+15550100",
        "http:///path",
    ]
    bad_seeds = ["http://127.0.0.1:99999/", "http://0177.0.0.1/", "http://2130706433/", "http://[::1/"]
    website.fixed["/links"] = (
        200,
        "text/html; charset=utf-8",
        website.article(1)
        .replace("</body>", '<a href="http://127.0.0.1:99999/far">far</a><a href="mailto:me@x.example">m</a></body>')
        .encode(),
    )
    seeds = [redirect_to(website, loc) for loc in bad_redirects] + bad_seeds + [website.url("/links")]
    started = time.monotonic()
    rows = await asyncio.wait_for(crawl(isolated_db, seeds, fast(depth=1)), 60)
    assert time.monotonic() - started < 30
    for loc in bad_redirects:
        row = rows[redirect_to(website, loc)]
        assert row["error"] == "bad_redirect" and row["status"] == 302, (loc, row["error"], row["error_detail"])
    details = {seed: rows[seed]["error_detail"] for seed in bad_seeds}
    assert all(rows[seed]["error"] == "bad_url" for seed in bad_seeds)
    assert "Port out of range" in details["http://127.0.0.1:99999/"]
    assert "ambiguous IPv4" in details["http://0177.0.0.1/"] and "ambiguous IPv4" in details["http://2130706433/"]
    # the page linking to an impossible port keeps its own row, and the link gets one too; a mailto: is no page
    assert rows[website.url("/links")]["error"] is None
    assert rows["http://127.0.0.1:99999/far"]["error"] == "bad_url"
    assert not any(url.startswith("mailto:") for url in rows)


async def test_a_query_key_without_a_value_is_part_of_the_url(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    assert canonical(website.url("/r?a")) != canonical(website.url("/r?b"))
    rows = await crawl(isolated_db, [website.url("/r?a"), website.url("/r")], fast(min_text_chars=20))
    redirected = rows[website.url("/r?a")]
    assert redirected["error"] is None and redirected["final_url"] == website.url("/r?b")
    assert "which?" in (rows[website.url("/r")]["text"] or "")


async def test_credentials_in_urls_are_neither_stored_nor_sent(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    seed = website.url("/articles/2.html").replace("http://", "http://someone:hunter2@")
    rows = await crawl(isolated_db, [seed, "http://user:pw@127.0.0.1:99999/"], fast())
    assert set(rows) == {website.url("/articles/2.html"), "http://127.0.0.1:99999/"}
    assert rows[website.url("/articles/2.html")]["error"] is None
    assert not any("authorization" in {k.lower() for k in r.headers} for r in website.log)


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        ("/charset?label=undefined", "personal finance notes"),  # article 4 (see site_server.TOPICS)
        ("/charset?label=rot13", "personal finance notes"),
        ("/meta-charset?label=punycode", "woodworking notes"),
        ("/utf16", "birdwatching notes"),
        ("/sjis-as-latin1", "家庭菜園"),
    ],
)
async def test_unusable_or_lying_charsets_still_give_clean_text(
    website: Site, isolated_db: Path, path: str, expect: str
) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    rows = await crawl(isolated_db, [website.url(path)], fast(min_text_chars=50))
    row = rows[website.url(path)]
    assert row["error"] is None, (row["error"], row["error_detail"])
    text = (row["title"] or "") + " " + row["text"]
    assert expect in text.lower()
    assert "\x00" not in text and "\ufffd" not in text and "ƒ" not in text


async def test_text_in_no_charset_at_all_is_bad_charset(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    website.fixed["/garbage"] = (200, "text/html", b"<html><body>" + bytes(range(1, 32)) * 300 + b"</body></html>")
    rows = await crawl(isolated_db, [website.url("/garbage")], fast())
    assert rows[website.url("/garbage")]["error"] == "bad_charset"


@pytest.mark.parametrize("path", ["/drip?every=0.5", "/drip-headers?every=0.5"])
async def test_a_dripping_server_ends_as_a_timeout_within_the_deadline(
    website: Site, isolated_db: Path, path: str
) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    started = time.monotonic()
    rows = await crawl(isolated_db, [website.url(path)], fast(fetch_deadline=2.0, read_timeout=30))
    took = time.monotonic() - started
    row = rows[website.url(path)]
    assert row["error"] == "timeout" and "deadline" in row["error_detail"]
    assert took < 6, f"a 2 s deadline took {took:.1f}s"


async def test_an_absurd_crawl_delay_is_capped_and_said(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nCrawl-delay: 100000\n"
    db = Database(isolated_db)
    started = time.monotonic()
    with BatchWriter(db) as writer:
        job = Crawl(fast(max_crawl_delay=0.4), writer)
        await job.run([website.url("/articles/1.html"), website.url("/articles/2.html")])
    assert time.monotonic() - started < 10
    starts = [r.time for r in website.log if r.path.startswith("/articles/")]
    assert len(starts) == 2 and starts[1] - starts[0] >= 0.35, "the capped delay still holds"
    assert any("100000" in w and "capped" in w for w in job.warnings)
    con = duckdb.connect(str(isolated_db), read_only=True)
    delays = con.execute("SELECT metadata->'crawl_delay' FROM pages").fetchall()
    con.close()
    assert all(d[0] is not None and '"used":0.4' in d[0].replace(" ", "") for d in delays)


class _FaultyFetcher(Fetcher):
    """Our own fetcher with a fault of ours on one URL: the crawl's safety net is what is tested."""

    async def fetch(self, url: str) -> FetchResult:
        if url.endswith("/articles/3.html"):
            raise RuntimeError("a bug met on this page")
        return await super().fetch(url)


async def test_a_fault_of_ours_is_an_internal_error_row_and_the_crawl_goes_on(website: Site, isolated_db: Path) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    db = Database(isolated_db)
    settings = fast()
    seeds = [website.url(f"/articles/{n}.html") for n in (1, 3, 4)]
    async with _FaultyFetcher(settings) as fetcher:
        with BatchWriter(db) as writer:
            stats = await asyncio.wait_for(Crawl(settings, writer, fetcher=fetcher).run(seeds), 60)
    assert stats.attempted == 3 and stats.ok == 2 and stats.by_reason == {"internal_error": 1}
    con = duckdb.connect(str(isolated_db), read_only=True)
    detail = con.execute("SELECT error_detail FROM pages WHERE error = 'internal_error'").fetchone()
    con.close()
    assert detail == ("RuntimeError: a bug met on this page",)


async def test_a_row_that_cannot_be_recorded_stops_the_crawl_instead_of_hanging(website: Site) -> None:
    website.robots = "User-agent: *\nAllow: /\n"

    def broken(*_: Any) -> None:
        raise OSError("the display went away")

    job = Crawl(fast(), None, on_page=broken)
    with pytest.raises(OSError, match="display went away"):
        await asyncio.wait_for(job.run([website.url(f"/articles/{n}.html") for n in range(1, 6)]), 60)


def test_the_guard_judges_addresses_that_carry_other_addresses() -> None:
    # classification only: nothing here is connected to
    assert address_kind("2002:7f00:1::1") == "loopback"  # 6to4 carrying 127.0.0.1
    assert address_kind("2002:c0a8:0101::1") == "private"  # 6to4 carrying 192.168.1.1
    assert address_kind("2002:0808:0808::1") is None  # 6to4 carrying 8.8.8.8: public
    assert address_kind("64:ff9b::7f00:1") == "loopback"  # NAT64 carrying 127.0.0.1
    assert address_kind("64:ff9b::a9fe:a9fe") == "link-local"  # NAT64 carrying 169.254.169.254
    assert address_kind("64:ff9b::808:808") is None  # NAT64 carrying 8.8.8.8
    assert address_kind("64:ff9b:1::1") == "private"
    assert address_kind("fec0::1") == "site-local"
    assert address_kind("168.63.129.16") == "cloud-service"
    assert address_kind("::ffff:10.0.0.1") == "private"


async def test_search_hits_that_cannot_be_fetched_get_rows_in_a_run_reader(website: Site, isolated_db: Path) -> None:
    from agents.reader import WebReader
    from crawler.search import SearXNG

    website.robots = "User-agent: *\nAllow: /\n"
    website.extra_hits = ["http://127.0.0.1:99999/x", "http://0177.0.0.1/y"]
    db = Database(isolated_db)
    search = SearXNG(website.base, rate=0)
    with BatchWriter(db, flush_interval=0.05) as writer:
        reader = WebReader(fast(render="never"), writer, search=search, results_per_query=10, run_id="run_x")
        try:
            pages = await reader(["gardening"])
        finally:
            await search.aclose()
            await reader.aclose()
    assert pages, "the good hits are still read"
    con = duckdb.connect(str(isolated_db), read_only=True)
    bad = dict(con.execute("SELECT url, error FROM pages WHERE run_id = 'run_x' AND error IS NOT NULL").fetchall())
    con.close()
    assert bad == {"http://127.0.0.1:99999/x": "bad_url", "http://0177.0.0.1/y": "bad_url"}


def test_swarm_crawl_of_a_page_linking_to_every_hostile_case_ends_with_a_row_each(
    cli: Cli, website: Site, isolated_db: Path
) -> None:
    website.robots = "User-agent: *\nAllow: /\n"
    targets = [
        *(
            f"/redirect-to?url={urllib.parse.quote(loc, safe='')}"
            for loc in ("data:,x", "javascript:void(0)", "http:///p")
        ),
        "/charset?label=undefined",
        "/meta-charset?label=punycode",
        "/utf16",
        "/sjis-as-latin1",
        "/drip?every=1",
        "/r?a",
        "/status/500",
    ]
    links = "".join(f'<a href="{t}">{i}</a>' for i, t in enumerate(targets))
    links += (
        f'<a href="http://127.0.0.1:99999/">port</a><a href="http://u:p@127.0.0.1:{website.port}/text.txt">creds</a>'
    )
    page = f"<html><body><article><h1>Links</h1><p>{' '.join(prose(3))}</p>{links}</article></body></html>"
    website.fixed["/hostile"] = (200, "text/html; charset=utf-8", page.encode())
    code, out, err = cli(
        "crawl", website.url("/hostile"), "http://0177.0.0.1/", "--depth", "1", "--allow-private",
        "--host-rate", "0", "--timeout", "3", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    con = duckdb.connect(str(isolated_db), read_only=True)
    rows = dict(con.execute("SELECT url, coalesce(error, 'ok') FROM pages").fetchall())
    con.close()
    expected = {canonical(website.url(t)) for t in targets} | {
        website.url("/hostile"),
        website.url("/text.txt"),
        "http://127.0.0.1:99999/",
        "http://0177.0.0.1/",
    }
    assert set(rows) == expected, (sorted(set(rows) - expected), sorted(expected - set(rows)))
    assert rows[canonical(website.url("/drip?every=1"))] == "timeout"
    assert rows["http://127.0.0.1:99999/"] == "bad_url" and rows[website.url("/text.txt")] == "ok"
    assert "internal_error" not in rows.values()
    assert f"{len(expected)} pages" in out


@pytest.mark.slow  # starts Chromium
async def test_what_a_rendered_page_was_refused_is_in_its_row(website: Site, isolated_db: Path) -> None:
    """The guard refuses 10.255.255.1 before any connection is made: nothing leaves loopback."""
    website.robots = "User-agent: *\nAllow: /\n"
    script = "fetch('http://10.255.255.1/collect').catch(() => 0);"
    page = website.article(3).replace("</body>", f"<script>{script}</script></body>")
    website.fixed["/calls-home"] = (200, "text/html; charset=utf-8", page.encode())
    rows = await crawl(isolated_db, [website.url("/calls-home")], fast(render="always"))
    row = rows[website.url("/calls-home")]
    assert row["error"] is None and row["rendered"] is True
    assert "10.255.255.1" in row["metadata"] and "render_refused" in row["metadata"]
