"""Reading for one persona: pick the pages most relevant to it and cut them into chunks that fit.

Relevance is BM25 over the page text, with the persona's topics and queries as the query. It is
lexical and cheap (no model, no extra dependency, microseconds a page), works before anything is
embedded, and is what matters here: the pages come from the persona's own searches, so ranking only
has to put the on-topic ones first. BM25 is a dozen lines; a library would add more than it saves.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from agents import fence

_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "from",
        "are",
        "was",
        "were",
        "you",
        "your",
        "have",
        "has",
        "not",
        "but",
        "can",
        "its",
        "into",
        "how",
        "what",
        "why",
        "who",
        "when",
        "which",
        "about",
        "they",
        "them",
        "their",
        "our",
        "out",
        "more",
        "most",
        "also",
        "than",
        "then",
    ]
)


@dataclass(frozen=True)
class Page:
    page_id: str
    url: str
    title: str
    text: str


@dataclass(frozen=True)
class Chunk:
    number: int  # the [n] the assistant cites
    page: Page
    text: str


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in STOP_WORDS]


def bm25(query: list[str], documents: list[list[str]], k1: float = 1.2, b: float = 0.75) -> list[float]:
    if not documents:
        return []
    average = sum(len(d) for d in documents) / len(documents) or 1.0
    frequency = Counter(term for d in documents for term in set(d))
    scores = []
    for doc in documents:
        counts = Counter(doc)
        score = 0.0
        for term in set(query):
            if term in counts:
                idf = math.log(1 + (len(documents) - frequency[term] + 0.5) / (frequency[term] + 0.5))
                tf = counts[term]
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / average))
        scores.append(score)
    return scores


def select(pages: list[Page], interests: list[str], k: int) -> list[Page]:
    """The `k` pages scoring highest for the interests (ties keep the crawl's order)."""
    query = [w for text in interests for w in words(text)]
    scores = bm25(query, [words(p.title + " " + p.text) for p in pages])
    ranked = sorted(range(len(pages)), key=lambda i: (-scores[i], i))
    return [pages[i] for i in ranked[:k] if scores[i] > 0] or pages[:k]


def chunks(pages: list[Page], budget_chars: int, chunk_chars: int = 1500) -> list[Chunk]:
    """Paragraph-packed chunks, taken round-robin across pages (each page gets a say) up to the budget."""
    per_page: list[list[str]] = []
    for page in pages:
        parts, current = [], ""
        for paragraph in (p.strip() for p in page.text.split("\n") if p.strip()):
            if current and len(current) + len(paragraph) + 1 > chunk_chars:
                parts.append(current)
                current = ""
            current = f"{current}\n{paragraph}" if current else paragraph[:chunk_chars]
        if current:
            parts.append(current)
        per_page.append(parts)
    out: list[Chunk] = []
    used = 0
    for depth in range(max((len(p) for p in per_page), default=0)):
        for page, parts in zip(pages, per_page, strict=True):
            if depth < len(parts) and used + len(parts[depth]) <= budget_chars:
                out.append(Chunk(len(out) + 1, page, parts[depth]))
                used += len(parts[depth])
    return out


def render_sources(selected: list[Chunk]) -> str:
    """The numbered chunks, each under its `[n] title — url` header: the only `[n]` headers in the result,
    since the page text, title and URL are written as data (see agents/fence.py)."""
    return "\n\n".join(
        f"[{c.number}] {fence.page_line(c.page.title)} — {fence.page_line(c.page.url)}\n{fence.page_text(c.text)}"
        for c in selected
    )


def render_digest(selected: list[Chunk], chars: int = 200) -> str:
    """What the user simulator is shown: each numbered chunk's title and opening, not the whole text.
    A reader asks about what caught their eye; the assistant, who must answer, gets the full chunks."""
    out = []
    for c in selected:
        opening = " ".join(fence.page_text(c.text).split())  # defused before its lines are joined
        if len(opening) > chars:
            opening = opening[:chars].rsplit(" ", 1)[0] + " …"
        out.append(f"[{c.number}] {fence.page_line(c.page.title)}: {opening}")
    return "\n".join(out)
