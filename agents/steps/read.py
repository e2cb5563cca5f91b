"""`read`: search and crawl for the cycle's queries, pick the most relevant pages, cut them to fit."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents import fence, reading
from agents.runs import UnitReason
from agents.steps.base import CycleFailed, CycleState, StepKind


class ReadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    pages: int | None = Field(None, ge=1, le=100)  # pages read; none: the run's --pages
    source_chars: int | None = Field(None, ge=200, le=1_000_000)  # chunk text given to the model; none: sized to it


class Read(StepKind):
    """Search and crawl for the queries, rank the pages (BM25 over the topics and queries), chunk the best
    ones. Gives `sources` (numbered chunks, for the assistant) and `digest` (titles and openings, for the
    user simulator), both fenced as untrusted web text. No pages: the unit fails `no_pages`."""

    Options = ReadOptions
    prompt = "none"
    after = ("interests",)
    provides = frozenset({"sources", "digest"})

    async def run(self, state: CycleState) -> None:
        options = self.options
        assert isinstance(options, ReadOptions)
        queries = state.conversation.queries
        if not queries:
            raise CycleFailed(UnitReason.NO_PAGES, "no queries to search for")
        pages = await state.read(queries)
        if not pages:
            raise CycleFailed(UnitReason.NO_PAGES, f"no readable pages for {queries}")
        best = reading.select(pages, state.topics + queries, options.pages or state.config.pages)
        state.chosen = reading.chunks(best, options.source_chars or state.config.source_chars)
        state.fenced["sources"] = fence.fence(fence.SOURCES, reading.render_sources(state.chosen))
        state.fenced["digest"] = fence.fence(fence.DIGEST, reading.render_digest(state.chosen))
        # which page each source number was: what a later check or judge needs to find the page again
        state.conversation.outputs[self.name] = {
            "sources": [{"n": c.number, "page_id": c.page.page_id} for c in state.chosen]
        }
