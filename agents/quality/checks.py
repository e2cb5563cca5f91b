"""Checks on every conversation, computed without a model: do the citations point at sources given, do
the cited pages support what cites them, does a turn echo the prompt or another turn, is the text
degenerate, is the metadata made of words. Each gives a score in [0, 1], passed or not against its
threshold, and a detail that says what failed; `blocking` checks decide what `swarm export` keeps.

    results = check(conversation, {1: page_text_1, 2: page_text_2})

They are lexical on purpose: microseconds a conversation, the same for every model and language of
word characters, and explainable in one line (the detail). Judges (a model's opinion) are recipe steps.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.reading import STOP_WORDS

CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
_FENCE = re.compile(r"<<<|>>>|\(untrusted data\)|^\s*\[\d{1,3}\] .{0,200} — \S+", re.MULTILINE)
_BREAK = re.compile(
    r"\b(as an ai\b|i am an ai\b|i'm an ai\b|as a language model|i am a language model|ai language model|"
    r"i (?:can ?not|can't|am unable to) (?:help|assist|provide|comply))",
    re.IGNORECASE,
)
_ENDS = re.compile(r"[.!?…\"')\]*]\s*$")
_TOKEN = re.compile(r"\w+")
_TAG = re.compile(r"^[^\W\d_][\w'’ .&+/-]{0,39}$")


@dataclass(frozen=True)
class Result:
    check: str
    score: float  # 0 … 1, higher is better
    passed: bool
    blocking: bool
    detail: str

    def row(self, conversation_id: str, run_id: str | None) -> dict[str, Any]:
        return {"conversation_id": conversation_id, "run_id": run_id, "check_name": self.check, "score": self.score,
                "passed": self.passed, "blocking": self.blocking, "detail": self.detail}  # fmt: skip


@dataclass(frozen=True)
class Check:
    name: str
    threshold: float  # passed when the score is at least this
    blocking: bool
    definition: str  # what docs/quality.md says of it
    needs_pages: bool
    run: Callable[[View], tuple[float, str]]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def content_words(tokens: list[str]) -> set[str]:
    """The distinct words of three letters or more that are not common English words (agents/reading.py's)."""
    return {t for t in set(tokens) if len(t) > 2} - STOP_WORDS


def _grams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


class View:
    """One conversation and its pages, with what several checks read worked out once (tokens, n-grams,
    content words): the checks run after every conversation of a run."""

    def __init__(self, messages: list[dict[str, str]], pages: Mapping[int, str], metadata: dict[str, Any] | None):
        self.messages, self.pages, self.metadata = messages, pages, metadata
        self.tokens = [_TOKEN.findall(m["content"].lower()) for m in messages]
        self._grams: dict[tuple[int, int], list[tuple[str, ...]]] = {}
        self._page_words: dict[int, set[str]] = {}

    def grams(self, i: int, n: int) -> list[tuple[str, ...]]:
        """Word n-grams of message `i`."""
        found = self._grams.get((i, n))
        if found is None:
            found = self._grams[(i, n)] = _grams(self.tokens[i], n)
        return found

    @functools.cached_property
    def page_tokens(self) -> dict[int, list[str]]:
        """Each page's words, lower-case: split once, read by every check that looks at the pages."""
        return {n: _TOKEN.findall(text.lower()) for n, text in self.pages.items()}

    def page_words(self, n: int) -> set[str]:
        """The content words of page `n`, worked out when a sentence first cites it."""
        found = self._page_words.get(n)
        if found is None:
            found = self._page_words[n] = content_words(self.page_tokens[n])
        return found

    @functools.cached_property
    def page_vocabulary(self) -> set[str]:
        return {t for tokens in self.page_tokens.values() for t in tokens}

    @functools.cached_property
    def page_text(self) -> str:
        """Every page's words one space apart (and at both ends): an n-gram is in a page when its words,
        joined the same way, are a substring — faster than a set of every n-gram of the pages."""
        return " " + " | ".join(" ".join(tokens) for tokens in self.page_tokens.values()) + " "

    def in_pages(self, i: int, n: int = 5) -> float:
        """Share of message `i`'s word n-grams found in the pages. Most turns share few words with the
        pages: when under half their words are there, so are under half their n-grams, and none is looked up."""
        grams, tokens = self.grams(i, n), self.tokens[i]
        if not grams or sum(t in self.page_vocabulary for t in tokens) < 0.5 * len(tokens):
            return 0.0
        text = self.page_text
        return sum(f" {' '.join(g)} " in text for g in grams) / len(grams)

    @functools.cached_property
    def said(self) -> list[tuple[str, list[int]]]:
        """The assistant's sentences, in order, each with the source numbers it cites."""
        return [
            (s, [int(n) for n in CITATION.findall(s)])
            for m in self.messages
            if m["role"] == "assistant"
            for s in sentences(m["content"])
        ]


def _containment(grams: list[tuple[str, ...]], whole: set[tuple[str, ...]]) -> float:
    """Share of `grams` found in `whole` (0 for none)."""
    return sum(g in whole for g in grams) / len(grams) if grams else 0.0


def citations(view: View) -> tuple[float, str]:
    said, pages = view.said, view.pages
    unknown = sorted({n for _, numbers in said for n in numbers if n not in pages})
    cited = sum(1 for _, numbers in said if any(n in pages for n in numbers))
    score = cited / len(said) if said else 0.0
    if unknown:
        return 0.0, f"cites {', '.join(f'[{n}]' for n in unknown)}, which no source given has (sources 1–{len(pages)})"
    if not cited:
        return 0.0, f"no assistant sentence cites a source ({len(said)} sentences, {len(pages)} sources given)"
    return score, f"{cited} of {len(said)} assistant sentences cite a source"


def support(view: View) -> tuple[float, str]:
    scores = []
    for sentence, numbers in view.said:
        cited = [n for n in numbers if n in view.pages]
        claim = content_words(_TOKEN.findall(CITATION.sub(" ", sentence).lower())) if cited else set()
        if claim:
            scores.append(max(len(claim & view.page_words(n)) / len(claim) for n in cited))
    if not scores:
        return 0.0, "no cited sentence to check"
    mean = sum(scores) / len(scores)
    return (
        mean,
        f"{len(scores)} cited sentences; their words in the cited page: mean {mean:.2f}, lowest {min(scores):.2f}",
    )


def echo(view: View) -> tuple[float, str]:
    messages = view.messages
    flagged: dict[int, str] = {}
    for i, m in enumerate(messages):
        if m["role"] == "user" and _FENCE.search(m["content"]):
            flagged[i] = "copies the prompt's fence or source headers"
        elif m["role"] == "user" and view.in_pages(i) >= 0.6:
            flagged[i] = "copies the sources"
        elif m["role"] == "assistant" and i and _containment(view.grams(i - 1, 5), set(view.grams(i, 5))) >= 0.8:
            flagged[i] = "repeats the user's turn"
        else:
            mine = set(view.grams(i, 3))
            for j in range(i):
                theirs = set(view.grams(j, 3))
                if messages[j]["role"] == m["role"] and mine and len(mine & theirs) / len(mine | theirs) >= 0.8:
                    flagged[i] = f"repeats turn {j + 1}"
                    break
    return _per_turn(messages, flagged, "no turn echoes the prompt, the sources or another turn")


def degenerate(view: View) -> tuple[float, str]:
    messages = view.messages
    flagged: dict[int, str] = {}
    for i, m in enumerate(messages):
        content = m["content"].strip()
        grams = view.grams(i, 3)
        broken = _BREAK.search(content)
        if not content:
            flagged[i] = "is empty"
        elif len(grams) >= 30 and len(set(grams)) / len(grams) < 0.5:
            flagged[i] = f"loops ({len(set(grams))} distinct word 3-grams of {len(grams)})"
        elif broken:
            flagged[i] = f"breaks character or refuses ({broken.group(0)!r})"
        elif m["role"] == "assistant" and not _ENDS.search(content):
            flagged[i] = "stops mid-sentence"
    return _per_turn(messages, flagged, "no empty, looping, cut or out-of-character turn")


def _per_turn(messages: list[dict[str, str]], flagged: dict[int, str], clean: str) -> tuple[float, str]:
    """A per-turn check's result: the share of turns not flagged, and what each flagged turn did."""
    if not messages:
        return 0.0, "no turns"
    detail = "; ".join(f"turn {i + 1} ({messages[i]['role']}) {why}" for i, why in flagged.items())
    return 1 - len(flagged) / len(messages), detail or clean


def metadata_sanity(view: View) -> tuple[float, str]:
    metadata = view.metadata
    if not isinstance(metadata, dict):
        return 0.0, "no metadata (the step failed or the recipe has none)"
    labels = [str(t) for key in ("tags", "keywords") for t in metadata.get(key) or []]
    bad = [t for t in labels if not _TAG.match(t.strip()) or t.strip().isdigit()]
    talked = {w for tokens in view.tokens for w in content_words(tokens)}
    summary = content_words(_TOKEN.findall(str(metadata.get("summary") or "").lower()))
    shared = summary & talked
    problems = []
    if bad:
        shown = ", ".join(repr(t)[:30] for t in bad[:5])
        problems.append(f"{len(bad)} of {len(labels)} tags/keywords are not words: {shown}")
    if summary and len(shared) < 2:
        problems.append(f"the summary shares {len(shared)} content words with the conversation")
    score = (1 - len(bad) / len(labels) if labels else 1.0) * (1.0 if not summary or len(shared) >= 2 else 0.5)
    return score, "; ".join(
        problems
    ) or f"{len(labels)} tags/keywords are words; the summary shares {len(shared)} content words"


CHECKS: list[Check] = [
    Check("citations", 0.1, True, "share of assistant sentences that cite a source given ([n] with n among the "
          "numbered sources); 0 when one cites a number no source has", True, citations),
    Check("support", 0.5, True, "for each cited sentence, the share of its content words found in the cited page "
          "(the best of its citations); the mean over cited sentences", True, support),
    Check("echo", 1.0, True, "share of turns that do not echo: a user turn with the prompt's fence or source headers, "
          "or 60 % of its word 5-grams in the sources; an assistant turn holding 80 % of the user turn before it; "
          "a turn whose word 3-grams are 80 % (Jaccard) those of an earlier turn of the same speaker", True, echo),
    Check("degenerate", 1.0, True, "share of turns that are not empty, not looping (under half their word 3-grams "
          "distinct, in 30 or more), not out of character (\"as an AI\", refusals) and, for the assistant, not "
          "cut mid-sentence", False, degenerate),
    Check("metadata", 1.0, True, "every tag and keyword is a word or phrase (a letter first, no digits alone, no "
          "JSON), and the summary shares at least two content words with the conversation", False, metadata_sanity),
]  # fmt: skip
BY_NAME = {c.name: c for c in CHECKS}


def check(
    messages: list[dict[str, str]],
    pages: Mapping[int, str],
    metadata: dict[str, Any] | None,
    *,
    only: set[str] | None = None,
) -> list[Result]:
    """Every check (or those in `only`) of one conversation; `pages` maps each source number given to the
    text of its page."""
    view = View(messages, pages, metadata)
    out = []
    for c in CHECKS:
        if only is not None and c.name not in only:
            continue
        score, detail = c.run(view)
        score = round(max(0.0, min(1.0, score)), 4)
        out.append(Result(c.name, score, score >= c.threshold, c.blocking, detail))
    return out
