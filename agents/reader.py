"""What an agent reads: its queries searched with a backend (and/or seed URLs), crawled by the real
crawler — politely, with every attempt a row in `pages` — and handed back as `Page`s to the cycle.

One reader serves every agent of a run, so the politeness holds for the swarm, not per agent: one
fetcher (per-host gates, robots.txt cache, connection pools), one extraction pool, one browser. A URL
is fetched once per run: an agent whose search finds a page another agent already read gets it from a
bounded cache, and two agents finding it at the same moment share one fetch. Seed URLs (`--urls`) are
crawled once, to `--depth`, into a library every agent picks from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable

from agents.cycle import CycleFailed
from agents.reading import Page
from crawler import Crawl, CrawlSettings, Fetcher, reasons
from crawler.crawl import renderer_for
from crawler.extract import Extractor
from crawler.pages import PageRow
from crawler.search import SearchBackend, SearchError
from crawler.urls import canonical, redacted
from storage import BatchWriter

OnPage = Callable[[PageRow], None]


class PageCache:
    """Pages by canonical URL, least recently used dropped first once `max_chars` of text is held
    (so a long run over the real web keeps a bounded memory).

    A URL that gave no page is remembered too, so a swarm does not ask for it again: for good when it
    will not change (a 404, robots.txt, not HTML), for `failure_ttl` seconds when it may (a 503 or a
    timeout now may be a page later); at most `max_failures` of them, oldest dropped first."""

    def __init__(self, max_chars: int, *, failure_ttl: float = 600.0, max_failures: int = 100_000):
        self.max_chars, self.chars = max_chars, 0
        self.failure_ttl, self.max_failures = failure_ttl, max_failures
        self._pages: OrderedDict[str, Page] = OrderedDict()
        self._failed: OrderedDict[str, float] = OrderedDict()  # url → until when it counts as failed

    def __contains__(self, url: str) -> bool:
        if url in self._pages:
            return True
        until = self._failed.get(url)
        if until is None:
            return False
        if time.monotonic() > until:
            del self._failed[url]  # worth another try
            return False
        return True

    def get(self, url: str) -> Page | None:
        page = self._pages.get(url)
        if page is not None:
            self._pages.move_to_end(url)
        return page

    def put(self, url: str, page: Page | None, *, transient: bool = False) -> None:
        old = self._pages.pop(url, None)
        self.chars -= len(old.text) if old else 0
        self._failed.pop(url, None)
        if page is None:
            self._failed[url] = time.monotonic() + self.failure_ttl if transient else float("inf")
            while len(self._failed) > self.max_failures:
                self._failed.popitem(last=False)
            return
        self._pages[url] = page
        self.chars += len(page.text)
        while self.chars > self.max_chars and len(self._pages) > 1:
            _, dropped = self._pages.popitem(last=False)
            self.chars -= len(dropped.text)


class WebReader:
    def __init__(
        self,
        settings: CrawlSettings,
        writer: BatchWriter,
        *,
        search: SearchBackend | None = None,
        urls: list[str] | None = None,
        results_per_query: int = 5,
        run_id: str | None = None,
        on_page: OnPage | None = None,
        cache_chars: int = 50_000_000,
    ):
        self.settings, self.writer, self.search = settings, writer, search
        self.urls, self.results_per_query, self.run_id = list(urls or []), results_per_query, run_id
        self.on_page = on_page
        # search hits are read as found; --depth applies to the seed URLs' library
        self.hit_settings = dataclasses.replace(settings, depth=0, max_pages=None)
        self.warnings: list[str] = []
        self.renderer = renderer_for(settings, self.warnings)  # first: it may refuse (--render always)
        # one pool of extraction processes for every agent: spawning one per cycle costs about a second
        self.extractor = Extractor(settings.extract_workers, settings.extract_timeout)
        self.extractor.warm_up()
        self.fetcher = Fetcher(settings)
        self.cache = PageCache(cache_chars)
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._library: list[Page] | None = None
        self._library_lock = asyncio.Lock()
        self._closed = False

    async def aclose(self) -> None:
        """Close the fetcher, the browser and the extraction pool, each whatever the others did."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.fetcher.aclose()
        finally:
            try:
                if self.renderer is not None:
                    await self.renderer.close()
            finally:
                await asyncio.to_thread(self.extractor.close)

    async def __call__(self, queries: list[str]) -> list[Page]:
        hits: list[str] = []
        if self.search is not None:
            for query in queries:
                try:
                    found = await self.search.search(query, self.results_per_query)
                except SearchError as exc:
                    raise CycleFailed(f"search_{exc.reason}", str(exc)) from exc
                for hit in found:
                    url = canonical(hit.url) or redacted(hit.url)  # one that cannot be fetched: a bad_url row
                    if url not in hits:
                        hits.append(url)
        pages = await self._read(hits, queries)
        seen = {page.page_id for page in pages}
        pages += [page for page in await self.library() if page.page_id not in seen]
        return pages

    async def library(self) -> list[Page]:
        """The seed URLs crawled once (to --depth) for the whole run."""
        if not self.urls:
            return []
        async with self._library_lock:
            if self._library is None:
                found: list[Page] = []
                await self._crawl(
                    self.settings, self.urls, [], lambda url, page, _: found.append(page) if page else None
                )
                self._library = found
        return self._library

    async def _read(self, urls: list[str], queries: list[str]) -> list[Page]:
        todo = [url for url in urls if url not in self.cache and url not in self._inflight]
        listed: list[str] = []  # pages a hit that is a feed or sitemap listed
        if todo:
            loop = asyncio.get_running_loop()
            for url in todo:
                self._inflight[url] = loop.create_future()
            asked = set(todo)

            def keep(url: str, page: Page | None, transient: bool) -> None:
                self.cache.put(url, page, transient=transient)
                if url not in asked:
                    listed.append(url)

            # a hit that is a feed or a sitemap would bring in every page it lists: the crawl stops at
            # twice the hits, so a feed adds about as many pages as were asked for, not thousands
            bounded = dataclasses.replace(self.hit_settings, max_pages=2 * len(todo))
            try:
                await self._crawl(bounded, todo, queries, keep)
            finally:
                for url in todo:  # a URL the crawl never reached (it was cut short) stays uncached
                    self._inflight.pop(url).set_result(None)
        waiting = [self._inflight[url] for url in urls if url in self._inflight]
        if waiting:
            await asyncio.gather(*(asyncio.shield(f) for f in waiting))
        found: dict[str, Page] = {}  # by page: a listed page may also be a hit, or a hit's redirect target
        for url in [*urls, *listed]:
            page = self.cache.get(url)
            if page is not None:
                found.setdefault(page.page_id, page)
        return list(found.values())

    async def _crawl(
        self,
        settings: CrawlSettings,
        seeds: list[str],
        queries: list[str],
        keep: Callable[[str, Page | None, bool], None],
    ) -> None:
        def collect(row: PageRow, _: object) -> None:
            text = row.text if row.ok else None
            page = Page(row.page_id, row.final_url or row.url, row.title or "", text) if text else None
            keep(row.url, page, reasons.transient(row.error))
            if self.on_page is not None:
                self.on_page(row)

        crawl = Crawl(
            settings,
            self.writer,
            run_id=self.run_id,
            on_page=collect,
            extractor=self.extractor,
            fetcher=self.fetcher,
            renderer=self.renderer,
        )
        await crawl.run(seeds, queries)
        self.warnings += [w for w in crawl.warnings if w not in self.warnings]
