"""Search backends against local servers that speak their formats, and the formats' own examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crawler.search import Brave, DuckDuckGo, SearchError, SearXNG, backend
from crawler.search.duckduckgo import parse_results, result_url
from tests.support.cli import Cli
from tests.support.site_server import Site


async def test_searxng_json_api(website: Site) -> None:
    engine = SearXNG(website.base, rate=0)
    try:
        hits = await engine.search("astronomy notes", count=3)
    finally:
        await engine.aclose()
    assert len(hits) == 3 and [h.rank for h in hits] == [1, 2, 3]
    assert all(h.url.startswith(website.url("/articles/")) and h.title.startswith("Astronomy") for h in hits)
    request = next(r for r in website.log if r.path.startswith("/search"))
    assert "format=json" in request.path and "q=astronomy+notes" in request.path


async def test_searxng_instance_without_json_is_explained(website: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = SearXNG(website.base, rate=0)
    engine.base_url = website.url("/nojson")  # any path answering 404/403 must not look like "no results"
    with pytest.raises(SearchError) as info:
        await engine.search("x")
    await engine.aclose()
    assert info.value.reason == "unavailable"
    monkeypatch.delenv("SEARXNG_URL", raising=False)
    with pytest.raises(SearchError, match="set SEARXNG_URL"):
        backend("searxng")


async def test_brave_api_with_key_bad_key_and_rate_limit(website: Site) -> None:
    engine = Brave("test-key", base_url=website.base, rate=0)
    hits = await engine.search("cycling notes", count=2)
    assert len(hits) == 2 and "<strong>" not in hits[0].title and hits[0].title.startswith("Cycling")
    assert any(r.headers.get("X-Subscription-Token") == "test-key" for r in website.log)
    with pytest.raises(SearchError) as info:
        await engine.search("ratelimit please")
    assert info.value.reason == "rate_limited"
    await engine.aclose()
    wrong = Brave("wrong", base_url=website.base, rate=0)
    with pytest.raises(SearchError) as info:
        await wrong.search("cycling")
    await wrong.aclose()
    assert info.value.reason == "bad_key"


async def test_duckduckgo_html_results_and_its_challenge(website: Site) -> None:
    engine = DuckDuckGo(website.url("/html/"), rate=0)
    hits = await engine.search("gardening notes")
    assert hits and all(h.url.startswith(website.url("/articles/")) for h in hits)  # both link forms unwrapped
    with pytest.raises(SearchError) as info:
        await engine.search("anomaly")
    await engine.aclose()
    assert info.value.reason == "blocked"


def test_the_backends_own_example_formats_parse(formats: Path) -> None:
    ddg = parse_results((formats / "search" / "duckduckgo.html").read_text())
    assert [u for u, _, _ in ddg] == [
        "https://chess.example.org/openings/italian-game-plans",
        "https://www.example.com/forum/openings/giuoco-piano-vs-evans-gambit?page=2",
        "https://www.example.net/lessons/fried-liver-traps",
    ]
    assert parse_results((formats / "search" / "duckduckgo_anomaly.html").read_text()) == []
    assert (
        result_url("//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx%3Fy%3D1&rut=ff") == "https://a.example/x?y=1"
    )
    assert result_url("https://duckduckgo.com/y.js?ad_domain=x") is None


async def test_searxng_and_brave_example_bodies_give_the_expected_hits(formats: Path, website: Site) -> None:
    """The backends' example bodies, served as they are by a local server."""
    searx_body = (formats / "search" / "searxng.json").read_bytes()
    brave_body = (formats / "search" / "brave.json").read_bytes()
    website.fixed["/search"] = (200, "application/json", searx_body)
    website.fixed["/res/v1/web/search"] = (200, "application/json", brave_body)
    searx = SearXNG(website.base, rate=0)
    brave = Brave("k", base_url=website.base, rate=0)
    searx_hits, brave_hits = await searx.search("q"), await brave.search("q")
    await searx.aclose()
    await brave.aclose()
    assert [h.url for h in searx_hits] == [r["url"] for r in json.loads(searx_body)["results"]]
    assert [h.url for h in brave_hits] == [r["url"] for r in json.loads(brave_body)["web"]["results"]]
    assert all("<strong>" not in h.snippet for h in brave_hits)


LOCAL_FAST = ("--allow-private", "--host-rate", "0", "--render", "never", "--quiet")


def test_swarm_crawl_seeds_from_search_and_fetches_the_best_links_first(
    cli: Cli, websites: Any, isolated_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = websites(articles=20)
    site.robots = "User-agent: *\nAllow: /\n"
    monkeypatch.setenv("SEARXNG_URL", site.base)
    code, out, err = cli("crawl", "--search", "searxng", "--query", "astronomy", "--results", "2", *LOCAL_FAST)
    assert code == 0, err
    assert "searxng: 2 hits for 'astronomy'" in out and "2 ok" in out
    # best-first: from the index, with a query, the birdwatching articles are fetched before the others
    other = websites(articles=20)
    other.robots = "User-agent: *\nAllow: /\n"
    one_at_a_time = ("--concurrency", "1", "--host-concurrency", "1")
    code, out, err = cli(
        "crawl",
        other.url("/"),
        "--depth",
        "1",
        "--query",
        "birdwatching",
        "--max-pages",
        "3",
        *one_at_a_time,
        *LOCAL_FAST,
    )
    assert code == 0, err
    fetched = [p for p in other.paths() if p.startswith("/articles/")]
    assert sorted(fetched) == ["/articles/16.html", "/articles/6.html"], fetched


def test_search_misconfiguration_is_one_clear_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAVE_API_KEY", raising=False)
    code, _, err = cli("crawl", "--search", "brave", "--query", "x")
    assert code == 1 and "set BRAVE_API_KEY" in err
    code, _, err = cli("crawl", "--search", "altavista", "--query", "x")
    assert code == 1 and "choose one of: searxng, duckduckgo, brave" in err
