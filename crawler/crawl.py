"""A crawl: seeds in, every attempt out as a `pages` row; links followed to `--depth`, same site.

Workers take URLs from one frontier queue; politeness lives in the fetcher (per host), so the global
concurrency only bounds how many pages are in flight. The frontier only grows by links within the
depth and page limits. Every URL the crawl meets ends as one row — a URL that cannot be fetched
(`bad_url`) and a fault of our own (`internal_error`, with the exception) included — and no worker
dies of a page: the crawl ends when the frontier is empty, whatever the web sent.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crawler import discover, pages
from crawler.charsets import decode_text
from crawler.extract import Extracted, Extractor
from crawler.fetch import Fetcher
from crawler.guard import AddressPolicy
from crawler.reasons import Reason
from crawler.render import Renderer, RenderUnavailable
from crawler.settings import CrawlSettings
from crawler.urls import BadURL, canonicalise, host_key, redacted, same_host, same_site
from storage import BatchWriter, minhash
from storage.minhash import NearDuplicates
from storage.sql import new_id


def new_crawl_id() -> str:
    return new_id("crawl", timed=True)


@dataclass
class CrawlStats:
    started: float = field(default_factory=time.monotonic)
    attempted: int = 0
    ok: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.by_reason.values())

    def rate(self) -> float:
        return self.attempted / max(1e-9, time.monotonic() - self.started)


class Crawl:
    def __init__(
        self,
        settings: CrawlSettings,
        writer: BatchWriter | None,
        run_id: str | None = None,
        on_page: Callable[[pages.PageRow, CrawlStats], None] | None = None,
        extractor: Extractor | None = None,
        fetcher: Fetcher | None = None,
        renderer: Renderer | None = None,
    ):
        self.settings, self.writer = settings, writer
        self.run_id = run_id or new_crawl_id()  # a swarm passes its run id; a crawl alone makes one
        self.on_page = on_page
        self.stats = CrawlStats()
        # best-first when queries give keywords: (−score, order, url, depth, seed); FIFO otherwise
        self._queue: asyncio.PriorityQueue[tuple[float, int, str, int, str]] = asyncio.PriorityQueue()
        self._order = 0
        self._started = 0
        self.keywords: set[str] = set()
        self._seen: set[str] = set()
        self._hashes: dict[str, str] = {}
        self._near: NearDuplicates[str] = NearDuplicates(minhash.PAGES)
        self._capped_hosts: set[str] = set()
        self.warnings: list[str] = []
        # Shared by a caller that runs many crawls (a swarm's agents): one extraction pool, one browser,
        # and one fetcher, whose per-host gates and robots.txt cache then hold across every agent.
        self.extractor, self.fetcher, self.shared_renderer = extractor, fetcher, renderer
        self.renderer: Renderer | None = None

    async def run(self, seeds: Sequence[str], queries: Sequence[str] = ()) -> CrawlStats:
        """Crawl from `seeds`; with `queries`, links scoring higher on their words are fetched first."""
        self.keywords = {w for q in queries for w in _words(q)}
        for seed in seeds:
            try:
                url = canonicalise(seed)
            except BadURL as exc:
                self._bad_url(seed, 0, str(exc))
            else:
                self._enqueue(url, 0, url)
        owned = self.extractor is None
        extractor = self.extractor or Extractor(self.settings.extract_workers, self.settings.extract_timeout)
        if owned:
            extractor.warm_up()
        self.renderer = self.shared_renderer or self._renderer()
        fetcher = self.fetcher or Fetcher(self.settings)
        stopped: asyncio.Future[object] = asyncio.get_running_loop().create_future()  # a row not recorded
        try:
            workers = [
                asyncio.create_task(self._work(fetcher, extractor, stopped))
                for _ in range(max(1, self.settings.concurrency))
            ]
            drained: asyncio.Future[object] = asyncio.ensure_future(self._queue.join())
            try:
                await asyncio.wait([drained, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                drained.cancel()
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(drained, *workers, return_exceptions=True)
                if owned:
                    await asyncio.to_thread(extractor.close)
                if self.renderer is not None and self.shared_renderer is None:
                    await self.renderer.close()
        finally:
            if self.fetcher is None:
                await fetcher.aclose()
        if stopped.done():
            failure = stopped.result()
            assert isinstance(failure, Exception)
            raise failure
        return self.stats

    def _renderer(self) -> Renderer | None:
        return renderer_for(self.settings, self.warnings)

    def _enqueue(self, url: str, depth: int, seed: str, score: float = 0.0) -> None:
        if url in self._seen:
            return
        self._seen.add(url)
        self._order += 1
        self._queue.put_nowait((-score, self._order, url, depth, seed))

    def score(self, *texts: str) -> float:
        """How many query words the texts contain (a cheap lexical relevance for best-first order)."""
        if not self.keywords:
            return 0.0
        return float(sum(1 for text in texts for word in _words(text) if word in self.keywords))

    async def _work(self, fetcher: Fetcher, extractor: Extractor, stopped: asyncio.Future[object]) -> None:
        while True:
            _, _, url, depth, seed = await self._queue.get()
            try:
                limit = self.settings.max_pages
                if limit is None or self._started < limit:  # past the limit the frontier just drains
                    self._started += 1
                    await self._one(fetcher, extractor, url, depth, seed)
            except Exception as exc:  # recording failed (the writer, a caller's on_page): the crawl stops with it
                if not stopped.done():
                    stopped.set_result(exc)
            finally:
                self._queue.task_done()

    async def _one(self, fetcher: Fetcher, extractor: Extractor, url: str, depth: int, seed: str) -> None:
        """Fetch, extract and record one URL: always exactly one row, whatever happens on the way."""
        page = pages.PageRow(url=url, depth=depth, run_id=self.run_id)
        try:
            await self._visit(fetcher, extractor, page, seed)
        except Exception as exc:  # a fault of ours on this page: its row says so and the crawl goes on
            page.fail(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:2000])
        self._record(page)

    async def _visit(self, fetcher: Fetcher, extractor: Extractor, page: pages.PageRow, seed: str) -> None:
        url, depth = page.url, page.depth
        fetched = await fetcher.fetch(url)
        pages.from_fetch(page, fetched)
        self._note_capped_delay(url, fetched.notes)
        if fetched.error is not None or fetched.body is None:
            return
        final = fetched.final_url or url
        if discover.is_discovery(fetched.content_type, url):
            self._discover(page, final, fetched.body, depth, seed)
            return
        decoded = decode_text(fetched.body, fetched.charset)
        if decoded.notes:
            page.metadata["charset_notes"] = decoded.notes
        if decoded.garbled:
            page.fail(Reason.BAD_CHARSET, "; ".join(decoded.notes) or "unreadable text")
            return
        if fetched.content_type == "text/plain":  # already text: nothing to extract
            extracted = Extracted(text=decoded.text.strip())
        else:
            extracted = await extractor.extract(decoded.text, final)
        html = fetched.body
        if self._should_render(fetched.content_type, extracted.text):
            rendered = await self._render(fetcher, extractor, page, final)
            if rendered is not None and len(rendered[1].text) >= len(extracted.text):
                html, extracted = rendered[0].encode("utf-8"), rendered[1]
                page.rendered = True
        pages.from_extraction(page, extracted, decoded.charset, self._hashes, self._near)
        rejected = pages.quality_gate(self.settings, html, extracted)
        if rejected and page.ok:
            page.fail(*rejected)
        if depth < self.settings.depth:
            page_score = min(self.score(extracted.title or ""), 3.0)
            for link in extracted.links:
                if not self.settings.same_site or same_site(link, seed):
                    anchor = extracted.anchors.get(link, "")
                    self._enqueue(link, depth + 1, seed, page_score + self.score(anchor, link))
            for link, why in extracted.bad_links.items():
                if not self.settings.same_site or same_host(link, seed):
                    self._bad_url(link, depth + 1, why)

    def _bad_url(self, url: str, depth: int, why: str) -> None:
        """A URL met that cannot be fetched: a row saying why, once (stored without credentials)."""
        shown = redacted(url)
        if shown in self._seen:
            return
        self._seen.add(shown)
        page = pages.PageRow(url=shown, depth=depth, run_id=self.run_id)
        page.fail(Reason.BAD_URL, why)
        self._record(page)

    def _note_capped_delay(self, url: str, notes: dict[str, object]) -> None:
        capped = notes.get("crawl_delay")
        if isinstance(capped, dict) and host_key(url) not in self._capped_hosts:
            self._capped_hosts.add(host_key(url))
            self.warnings.append(
                f"{host_key(url)} asks for a Crawl-delay of {capped['asked']:g}s; capped at {capped['used']:g}s "
                "(CrawlSettings.max_crawl_delay)"
            )

    def _should_render(self, content_type: str | None, text: str) -> bool:
        if self.renderer is None or content_type not in ("text/html", "application/xhtml+xml"):
            return False
        return self.settings.render == "always" or len(text) < self.settings.min_text_chars

    async def _render(
        self, fetcher: Fetcher, extractor: Extractor, page: pages.PageRow, url: str
    ) -> tuple[str, Extracted] | None:
        assert self.renderer is not None
        try:
            async with fetcher.gates[host_key(url)].slot():  # the browser's visit is a request too
                rendered = await self.renderer.render(url)
        except Exception as exc:  # a browser error fails the rendering, not the crawl
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            page.metadata["render_error"] = detail
            if self.settings.render == "always":
                page.fail(Reason.RENDER_FAILED, detail)
            return None
        if rendered.refused:  # what the page asked for and did not get (SSRF guard, budget), by the first few
            refused = {"render_refused": rendered.refused[:20], "render_refused_count": len(rendered.refused)}
            page.metadata.update(refused)
        return rendered.html, await extractor.extract(rendered.html, rendered.final_url)

    def _discover(self, page: pages.PageRow, url: str, body: bytes, depth: int, seed: str) -> None:
        """A sitemap or feed: its URLs join the frontier at the same depth (it lists pages, it is not one)."""
        kind, urls, sitemaps = discover.parse(url, body, self.settings.max_bytes)
        if kind == "unknown":
            page.fail(Reason.NOT_HTML, "XML that is neither a sitemap nor a feed")
            return
        page.metadata.update(discovery=kind, urls=len(urls), sitemaps=len(sitemaps))
        page.links = sitemaps + urls
        for link in sitemaps + urls:
            if not self.settings.same_site or same_site(link, seed):
                self._enqueue(link, depth, seed)

    def _record(self, page: pages.PageRow) -> None:
        self.stats.attempted += 1
        if page.ok:
            self.stats.ok += 1
        else:
            self.stats.by_reason[str(page.error)] += 1
        if self.writer is not None:
            self.writer.submit("pages", page.row())
        if self.on_page is not None:
            self.on_page(page, self.stats)


def renderer_for(settings: CrawlSettings, warnings: list[str]) -> Renderer | None:
    """The browser for `--render`: None for never, or for auto when Chromium is missing (with a warning)."""
    if settings.render == "never":
        return None
    try:
        return Renderer(
            AddressPolicy(settings.allow_private, settings.allowed_networks),
            contexts=settings.render_contexts,
            timeout=settings.render_timeout,
            executable=settings.browser,
            user_agent=settings.user_agent,
        )
    except RenderUnavailable as exc:
        if settings.render == "always":
            raise
        warnings.append(f"rendering is off: {exc}")
        return None


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2]
