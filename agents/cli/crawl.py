"""`swarm crawl`: fetch and extract pages into `pages`, without any LLM."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agents.cli.common import cli_errors, console, database, fail
from agents.cli.output import literal
from crawler.search_backends import SEARCH_BACKENDS
from crawler.settings import CrawlSettings

if TYPE_CHECKING:  # the crawler itself is imported by the command that runs it (httpx, trafilatura: ~0.5 s)
    from crawler import CrawlStats
    from crawler.pages import PageRow


def _read_urls(path: Path) -> list[str]:
    if not path.is_file():
        raise fail(f"--urls {path}: no such file")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


async def _search(name: str, queries: list[str], per_query: int) -> list[str]:
    from crawler.search import backend as search_backend

    engine = search_backend(name)
    try:
        found: list[str] = []
        for q in queries:
            hits = await engine.search(q, per_query)
            console.print(f"{name}: {len(hits)} hits for {q!r}", markup=False)
            found += [hit.url for hit in hits if hit.url not in found]
        return found
    finally:
        await engine.aclose()


def _status(stats: CrawlStats) -> Text:
    failures = ", ".join(f"{reason} {n}" for reason, n in stats.by_reason.most_common(6)) or "none"
    return Text.assemble(
        (f"{stats.attempted} pages", "bold"),
        f"  {stats.rate():.1f}/s  ",
        (f"{stats.ok} ok", "green"),
        "  ",
        (f"{stats.failed} failed", "red" if stats.failed else "dim"),
        f" ({failures})",
    )


@cli_errors
def crawl(
    urls: Annotated[list[str] | None, typer.Argument(help="Seed URLs.")] = None,
    urls_file: Annotated[
        Path | None, typer.Option("--urls", help="File of seed URLs, one a line (# comments).")
    ] = None,
    depth: Annotated[
        int, typer.Option(help="Follow links this many hops from the seeds (same site).")
    ] = CrawlSettings.depth,
    allow_private: Annotated[
        bool, typer.Option(help="Allow loopback/private addresses (local test sites).")
    ] = CrawlSettings.allow_private,
    host_rate: Annotated[
        float, typer.Option(help="Requests per second per host; 0 = unlimited.")
    ] = CrawlSettings.host_rate,
    host_concurrency: Annotated[
        int, typer.Option(help="Connections at once per host.")
    ] = CrawlSettings.host_concurrency,
    concurrency: Annotated[int, typer.Option(help="Pages in flight across all hosts.")] = CrawlSettings.concurrency,
    max_pages: Annotated[int | None, typer.Option(help="Stop after this many page attempts.")] = None,
    language: Annotated[
        list[str] | None, typer.Option(help="Keep only pages in this language (repeatable), e.g. en.")
    ] = None,
    render: Annotated[
        str, typer.Option(help="auto (when the HTML yields too little text), never, always.")
    ] = CrawlSettings.render,
    browser: Annotated[str | None, typer.Option(help="Chromium executable (default: found on PATH).")] = None,
    search: Annotated[
        str | None, typer.Option(help=f"Seed from a search backend: {', '.join(SEARCH_BACKENDS.names())}.")
    ] = None,
    query: Annotated[
        list[str] | None, typer.Option("--query", help="Search query (repeatable); also orders links.")
    ] = None,
    results: Annotated[int, typer.Option(help="Search hits used per query.")] = 10,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds of network time one URL may take in all (redirects and retries included)."),
    ] = CrawlSettings.fetch_deadline,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress; just the summary.")] = False,
) -> None:
    """Fetch and extract pages politely into the pages table (robots.txt, per-host limits, retries).

    Every attempt is a row in `pages`; a failure has `error` set to a reason code.

    Examples:

      swarm crawl https://example.org/blog/ --depth 1

      swarm crawl --urls seeds.txt --host-rate 0.5

      swarm crawl http://127.0.0.1:8000/ --allow-private --host-rate 0 --host-concurrency 8 --depth 2

      SEARXNG_URL=http://localhost:8888 swarm crawl --search searxng --query "companion planting" --depth 1
    """
    queries = list(query or [])
    seeds = list(urls or []) + (_read_urls(urls_file) if urls_file else [])
    if search:
        if not queries:
            raise fail("--search needs at least one --query", 2)
        seeds += asyncio.run(_search(search, queries, results))
    if not seeds:
        raise fail("give seed URLs, --urls FILE, or --search NAME --query Q", 2)
    if render not in ("auto", "never", "always"):
        raise fail(f"--render must be auto, never or always, not {render!r}", 2)
    if host_rate < 0 or host_concurrency < 1 or concurrency < 1 or depth < 0 or not timeout > 0:
        raise fail("--host-rate must be >= 0; --host-concurrency, --concurrency >= 1; --depth >= 0; --timeout > 0", 2)
    settings = CrawlSettings(
        allow_private=allow_private,
        host_rate=host_rate,
        host_concurrency=host_concurrency,
        concurrency=concurrency,
        depth=depth,
        max_pages=max_pages,
        render=render,
        browser=browser,
        languages=tuple(code.lower() for code in language or ()),
        fetch_deadline=timeout,
    )
    from crawler import Crawl
    from storage import BatchWriter

    db = database()
    with BatchWriter(db) as writer:
        if quiet:
            job = Crawl(settings, writer)
            stats = asyncio.run(job.run(seeds, queries))
        else:
            with Live(Text("starting…"), console=console, refresh_per_second=4, transient=True) as live:

                def show(_: PageRow, current: CrawlStats) -> None:
                    live.update(_status(current))

                job = Crawl(settings, writer, on_page=show)
                stats = asyncio.run(job.run(seeds, queries))
    for warning in job.warnings:
        console.print(Text.assemble(("note: ", "yellow"), literal(warning)), soft_wrap=True)
    console.print(_status(stats))
    if stats.by_reason:
        table = Table("reason", "pages", title="failures")
        for reason, n in stats.by_reason.most_common():
            table.add_row(reason, str(n))
        console.print(table)
    console.print(
        f"crawl {job.run_id} → {db.path}\n"
        f"  swarm query \"SELECT url, status, error, title FROM pages WHERE run_id = '{job.run_id}'\"",
        soft_wrap=True,
        markup=False,
    )
