"""What an agent reads: its queries searched with a backend (and/or seed URLs), crawled by the real
crawler — politely, with every attempt a row in `pages` — and handed back as `Page`s to the cycle."""

from __future__ import annotations

from agents.cycle import CycleFailed
from agents.reading import Page
from crawler import Crawl, CrawlSettings
from crawler.extract import Extractor
from crawler.pages import PageRow
from crawler.search import SearchBackend, SearchError
from storage import BatchWriter


class WebReader:
    def __init__(
        self,
        settings: CrawlSettings,
        writer: BatchWriter,
        *,
        search: SearchBackend | None = None,
        urls: list[str] | None = None,
        results_per_query: int = 5,
        crawl_id: str | None = None,
    ):
        self.settings, self.writer, self.search = settings, writer, search
        self.urls, self.results_per_query, self.crawl_id = list(urls or []), results_per_query, crawl_id
        # one pool of extraction processes for every cycle: spawning one per cycle costs about a second
        self.extractor = Extractor(settings.extract_workers, settings.extract_timeout)
        self.extractor.warm_up()

    def close(self) -> None:
        self.extractor.close()

    async def __call__(self, queries: list[str]) -> list[Page]:
        seeds: list[str] = []
        if self.search is not None:
            for query in queries:
                try:
                    hits = await self.search.search(query, self.results_per_query)
                except SearchError as exc:
                    raise CycleFailed(f"search_{exc.reason}", str(exc)) from exc
                seeds += [hit.url for hit in hits if hit.url not in seeds]
        seeds += [url for url in self.urls if url not in seeds]
        pages: list[Page] = []

        def keep(row: PageRow, _: object) -> None:
            if row.ok and row.fields.get("text"):
                pages.append(
                    Page(
                        row.page_id,
                        row.fields.get("final_url") or row.url,
                        row.fields.get("title") or "",
                        row.fields["text"],
                    )
                )

        crawl = Crawl(self.settings, self.writer, crawl_id=self.crawl_id, on_page=keep, extractor=self.extractor)
        await crawl.run(seeds, queries)
        return pages
