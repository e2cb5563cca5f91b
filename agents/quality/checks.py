"""Checks on every conversation, computed without a model: do the citations point at sources given, do
the cited pages support what cites them, does a turn echo the prompt or another turn, is the text
degenerate, is the metadata made of words. Each gives a score in [0, 1], passed or not against its
threshold, and a detail that says what failed; `blocking` checks decide what `swarm export` keeps.

    results = check(messages, {1: page_text_1, 2: page_text_2}, metadata, persona=text, language="en")

They are lexical on purpose: a fraction of a millisecond a conversation, the same for every model and
language of word characters, and explainable in one line (the detail). Judges (a model's opinion) are
recipe steps. A page's words are worked out once (`prepare`, cached by text): a run's conversations
read the same pages again and again.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from agents.fence import NAMES as FENCE_NAMES
from agents.fence import TAG_LENGTH
from agents.quality import languages
from agents.reading import STOP_WORDS

CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
# a prompt's fence (agents/fence.py) as a model may copy it: its name with its tag
_FENCE_MARK = re.compile(rf"\b(?:{'|'.join(FENCE_NAMES)}) [0-9a-fA-F]{{{TAG_LENGTH}}}\b")
_FENCE_HINTS = ("<<<", ">>>", "(untrusted data)", *FENCE_NAMES)  # what a turn holds when it copies a fence
_SOURCE_HEADER = re.compile(r"^\s*\[\d{1,3}\] .{0,200} — \S+", re.MULTILINE)  # a source as the prompt lists it
_BREAK = re.compile(  # searched in lower-case text
    r"\b(as an ai\b|i am an ai\b|i'm an ai\b|as a language model|i am a language model|ai language model|"
    r"i (?:can ?not|can't|am unable to) (?:help|assist|provide|comply))"
)
_BREAK_HINTS = ("an ai", "language model", "i can", "unable to")
_ENDINGS = frozenset(".!?…\"')]*")  # an assistant turn's last character, spaces aside
_TOKEN = re.compile(r"\w+")
_TAG = re.compile(r"^[^\W\d_][\w'’ .&+/-]{0,39}$")
# a label that is the prompt's structure, not the content: a speaker or fence name as the prompt writes it
# (upper case), or a fence's tag of 12 hex digits; `user` and `assistant` in lower case only as a pair
_PROMPT_WORDS = re.compile(r"^\s*(USER|ASSISTANT|SYSTEM|CONVERSATION|SOURCES|WEB PAGES)\s*$|\b[0-9a-f]{12}\b")
_SPEAKERS = {"user", "assistant"}


class Result(NamedTuple):  # a tuple: made six times a conversation, at a third of a frozen dataclass's cost
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


# every byte that is not an ASCII word character (\w) becomes a space
_NOT_WORD = bytes(c if c < 128 and (chr(c).isalnum() or chr(c) == "_") else 32 for c in range(256))


def words_of(text: str) -> list[str]:
    r"""The words of `text` as `\w+` finds them. ASCII text, most of it, takes bytes.translate and split:
    the same words, three times faster than the regular expression, which tokenizing every turn and page
    made the checks' largest cost."""
    if text.isascii():
        return text.encode("ascii").translate(_NOT_WORD).decode("ascii").split()
    return _TOKEN.findall(text)


def sentences(text: str) -> list[str]:
    return [s for s in map(str.strip, _SENTENCE.split(text)) if s]


def claims(messages: list[dict[str, str]]) -> list[tuple[str, list[int]]]:
    """The assistant's sentences, in order, each with the source numbers it cites."""
    return [
        (s, [int(n) for n in CITATION.findall(s)] if "[" in s else [])
        for m in messages
        if m["role"] == "assistant"
        for s in sentences(m["content"])
    ]


def content_words(tokens: Iterable[str]) -> set[str]:
    """The distinct words of three letters or more that are not common English words (agents/reading.py's)."""
    return {t for t in set(tokens) if len(t) > 2} - STOP_WORDS


def _five_grams(tokens: list[str]) -> list[int]:
    """Word 5-grams, as hashes: every check compares them as sets, and a tuple that outlives its line is
    one more object for Python's garbage collector to walk (most of the checks' time, when they were kept)."""
    return list(map(hash, zip(tokens, tokens[1:], tokens[2:], tokens[3:], tokens[4:], strict=False)))


@dataclass(frozen=True)
class Page:
    """What the checks read of a page, worked out once: its words, its content words, and its word
    5-grams (as hashes, see _five_grams)."""

    vocabulary: frozenset[str]
    words: frozenset[str]
    grams: frozenset[int]


class _Prepared:
    """The pages worked out lately, least recently used first out, bounded by their characters: a page
    costs ~18 bytes a character once worked out, so 4 million characters hold ~70 MB (a run's pages in
    flight, concurrency × pages, and those read again soon), whatever the pages' sizes."""

    def __init__(self, budget: int = 4_000_000):
        self.budget, self.held = budget, 0
        self.pages: OrderedDict[str, Page] = OrderedDict()
        self.lock = threading.Lock()

    def __call__(self, text: str) -> Page:
        with self.lock:
            found = self.pages.get(text)
            if found is not None:
                self.pages.move_to_end(text)
                return found
        tokens = words_of(text.lower())
        vocabulary = frozenset(tokens)
        page = Page(vocabulary, frozenset(content_words(vocabulary)), frozenset(_five_grams(tokens)))
        with self.lock:
            if text not in self.pages:
                self.pages[text] = page
                self.held += len(text)
            while self.held > self.budget and len(self.pages) > 1:
                self.held -= len(self.pages.popitem(last=False)[0])
        return page


prepare = _Prepared()


class View:
    """One conversation and its pages, with what several checks read worked out once (tokens, n-grams,
    content words): the checks run after every conversation of a run."""

    def __init__(
        self,
        messages: list[dict[str, str]],
        pages: Mapping[int, str],
        metadata: dict[str, Any] | None,
        persona: str = "",
        language: str | None = None,
    ):
        self.messages, self.metadata, self.persona, self.language = messages, metadata, persona, language
        self.pages = {n: prepare(text) for n, text in pages.items()}
        self.lower = [m["content"].lower() for m in messages]
        self.tokens = [words_of(text) for text in self.lower]
        self._grams: dict[int, list[int]] = {}
        self._sets: dict[int, set[int]] = {}

    def five_grams(self, i: int) -> list[int]:
        """Word 5-grams of message `i`."""
        found = self._grams.get(i)
        if found is None:
            found = self._grams[i] = _five_grams(self.tokens[i])
        return found

    def gram_set(self, i: int) -> set[int]:
        """The distinct word 3-grams of message `i`."""
        found = self._sets.get(i)
        if found is None:
            tokens = self.tokens[i]  # straight into the set: no check needs the list
            found = self._sets[i] = set(map(hash, zip(tokens, tokens[1:], tokens[2:], strict=False)))
        return found

    @functools.cached_property
    def words(self) -> set[str]:
        """The conversation's content words (a sentence's are its words among them)."""
        return content_words(set().union(*self.tokens))

    def in_pages(self, i: int) -> float:
        """Share of message `i`'s word 5-grams found in the pages. Most turns share few words with the
        pages: when over half their words are in no page, so are over half their 5-grams, and none is
        looked up."""
        grams, tokens = self.five_grams(i), self.tokens[i]
        if not grams:
            return 0.0
        elsewhere = set(tokens).difference(*(page.vocabulary for page in self.pages.values()))
        if elsewhere and sum(map(elsewhere.__contains__, tokens)) > 0.5 * len(tokens):
            return 0.0
        return _containment(grams, set().union(*(page.grams.intersection(grams) for page in self.pages.values())))

    def in_persona(self, i: int) -> float:
        """Share of message `i`'s word 5-grams found in the persona's description."""
        grams = self.five_grams(i)
        return _containment(grams, self.persona_grams) if grams else 0.0

    @functools.cached_property
    def persona_grams(self) -> set[int]:
        return set(_five_grams(words_of(self.persona.lower())))

    @functools.cached_property
    def said(self) -> list[tuple[str, list[int]]]:
        # from the lower-case text (the checks compare lower-case words): the same sentences as claims()
        lowered = zip(self.messages, self.lower, strict=True)
        return claims([{"role": m["role"], "content": lower} for m, lower in lowered])


def _containment(grams: list[int], whole: set[int]) -> float:
    """Share of `grams` found in `whole` (0 for none)."""
    return sum(map(whole.__contains__, grams)) / len(grams) if grams else 0.0


def citations(view: View) -> tuple[float, str]:
    said, pages = view.said, view.pages
    unknown = sorted({n for _, numbers in said for n in numbers if n not in pages})
    cited = sum(1 for _, numbers in said if numbers and any(n in pages for n in numbers))
    score = cited / len(said) if said else 0.0
    if unknown:
        return 0.0, f"cites {', '.join(f'[{n}]' for n in unknown)}, which no source given has (sources 1–{len(pages)})"
    if not cited:
        return 0.0, f"no assistant sentence cites a source ({len(said)} sentences, {len(pages)} sources given)"
    return score, f"{cited} of {len(said)} assistant sentences cite a source"


def support(view: View) -> tuple[float, str]:
    scores, pages, words = [], view.pages, view.words
    for sentence, numbers in view.said:
        cited = [pages[n].words for n in numbers if n in pages] if numbers else None
        if not cited:
            continue
        # a citation's number is a word of three letters or more (a content word) only from [100] on
        claim = words.intersection(words_of(sentence if max(numbers) < 100 else CITATION.sub(" ", sentence)))
        if claim:
            scores.append(max(map(len, map(claim.intersection, cited))) / len(claim))
    if not scores:
        return 0.0, "no cited sentence to check"
    mean = sum(scores) / len(scores)
    return (
        mean,
        f"{len(scores)} cited sentences; their words in the cited page: mean {mean:.2f}, lowest {min(scores):.2f}",
    )


def echo(view: View) -> tuple[float, str]:
    messages = view.messages
    roles = [m["role"] for m in messages]
    sets = [view.gram_set(i) for i in range(len(messages))]
    flagged: dict[int, str] = {}
    for i, role in enumerate(roles):
        mine = sets[i]
        content = messages[i]["content"]
        if _copies_fence(content) or (role == "user" and _SOURCE_HEADER.search(content)):
            flagged[i] = "copies the prompt's fence or source headers"
        elif role == "user" and view.in_pages(i) >= 0.6:
            flagged[i] = "copies the sources"
        elif role == "user" and view.in_persona(i) >= 0.6:
            flagged[i] = "copies the persona's description"
        elif role == "assistant" and i and sets[i - 1] and len(sets[i - 1] & mine) >= 0.8 * len(sets[i - 1]):
            flagged[i] = "repeats the user's turn"
        elif mine:
            for j in range(i):
                theirs = sets[j]
                # Jaccard, without making the union; never 0.8 when one set is under 0.8 of the other
                if roles[j] != role or not 0.8 * len(theirs) <= len(mine) <= 1.25 * len(theirs):
                    continue
                shared = len(mine & theirs)
                if shared >= 0.8 * (len(mine) + len(theirs) - shared):
                    flagged[i] = f"repeats turn {j + 1}"
                    break
    return _per_turn(messages, flagged, "no turn echoes the prompt, the sources or another turn")


def _copies_fence(text: str) -> bool:
    """The text holds a fence's marks, or a fence's name with a tag (substring tests first: a regular
    expression over every turn would be a tenth of the checks' time)."""
    if not any(map(text.__contains__, _FENCE_HINTS)):
        return False
    return "<<<" in text or ">>>" in text or "(untrusted data)" in text or _FENCE_MARK.search(text) is not None


def degenerate(view: View) -> tuple[float, str]:
    messages = view.messages
    flagged: dict[int, str] = {}
    for i, m in enumerate(messages):
        content, lower = m["content"].rstrip(), view.lower[i]
        grams = max(0, len(view.tokens[i]) - 2)  # word 3-grams
        # every phrase _BREAK finds holds one of these: most turns need no regular expression
        broken = _BREAK.search(lower) if any(map(lower.__contains__, _BREAK_HINTS)) else None
        if not content.strip():
            flagged[i] = "is empty"
        elif grams >= 30 and len(view.gram_set(i)) < 0.5 * grams:
            flagged[i] = f"loops ({len(view.gram_set(i))} distinct word 3-grams of {grams})"
        elif broken:
            flagged[i] = f"breaks character or refuses ({broken.group(0)!r})"
        elif m["role"] == "assistant" and content[-1] not in _ENDINGS:
            flagged[i] = "stops mid-sentence"
    return _per_turn(messages, flagged, "no empty, looping, cut or out-of-character turn")


def _per_turn(messages: list[dict[str, str]], flagged: dict[int, str], clean: str) -> tuple[float, str]:
    """A per-turn check's result: the share of turns not flagged, and what each flagged turn did."""
    if not messages:
        return 0.0, "no turns"
    detail = "; ".join(f"turn {i + 1} ({messages[i]['role']}) {why}" for i, why in flagged.items())
    return 1 - len(flagged) / len(messages), detail or clean


def language(view: View) -> tuple[float, str]:
    expected, messages = view.language, view.messages
    if not expected:
        return 1.0, "the recipe sets no language"
    problem = languages.problem(expected)
    if problem:
        return 0.0, problem
    flagged: dict[int, str] = {}
    for i, m in enumerate(messages):
        # 20 word characters: a word has one at least, so the first 20 words tell
        if sum(map(len, view.tokens[i][:20])) >= 20:
            found = languages.other(m["content"], expected)
            if found:
                flagged[i] = f"is in {found[0]}, not {expected} (p {found[1]:.2f})"
    return _per_turn(messages, flagged, f"every turn is in {expected}")


def metadata_sanity(view: View) -> tuple[float, str]:
    metadata = view.metadata
    if not isinstance(metadata, dict):
        return 0.0, "no metadata (the step failed or the recipe has none)"
    labels = [str(t) for key in ("tags", "keywords") for t in metadata.get(key) or []]
    speakers = {t.strip().lower() for t in labels} >= _SPEAKERS
    bad = [
        t
        for t in labels
        if not _TAG.match(t.strip())
        or t.strip().isdigit()
        or _PROMPT_WORDS.search(t)
        or (speakers and t.strip().lower() in _SPEAKERS)
    ]
    summary = content_words(words_of(str(metadata.get("summary") or "").lower()))
    shared = summary & view.words
    problems = []
    if bad:
        shown = ", ".join(repr(t)[:30] for t in bad[:5])
        problems.append(f"{len(bad)} of {len(labels)} tags/keywords are not words, or the prompt's own: {shown}")
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
    Check("echo", 1.0, True, "share of turns that do not echo: a turn with the prompt's fence (`<<<`, `(untrusted "
          "data)`, a fence's name and tag such as `SOURCES 3f2a…`); a user turn with a source header as the prompt "
          "lists them, or 60 % of its word 5-grams in the sources or in the persona's description; an assistant "
          "turn holding 80 % of the word 3-grams of the user turn before it; a turn whose word 3-grams are 80 % "
          "(Jaccard) those of an earlier turn of the same speaker", True, echo),
    Check("degenerate", 1.0, True, "share of turns that are not empty, not looping (under half their word 3-grams "
          "distinct, in 30 or more), not out of character (\"as an AI\", refusals) and, for the assistant, not "
          "cut mid-sentence", False, degenerate),
    Check("language", 1.0, True, "share of turns in the recipe's `language`: a turn of 20 word characters or more "
          "counts as another language when CLD2 does not place its first 100 characters reliably in it and "
          "fastText's lid.176 guesses another at p ≥ 0.9; passes when the recipe sets none",
          False, language),
    Check("metadata", 1.0, True, "every tag and keyword is a word or phrase (a letter first, no digits alone, no "
          "JSON, not the prompt's speakers or fences: `USER`, `user` beside `assistant`, `CONVERSATION 3f2a…`), "
          "and the summary shares at least two content words with the conversation", False, metadata_sanity),
]  # fmt: skip
BY_NAME = {c.name: c for c in CHECKS}


def check(
    messages: list[dict[str, str]],
    pages: Mapping[int, str],
    metadata: dict[str, Any] | None,
    *,
    persona: str = "",
    language: str | None = None,
    only: set[str] | None = None,
) -> list[Result]:
    """Every check (or those in `only`) of one conversation; `pages` maps each source number given to the
    text of its page; `language` is the recipe's."""
    view = View(messages, pages, metadata, persona, language)
    out = []
    for c in CHECKS:
        if only is not None and c.name not in only:
            continue
        score, detail = c.run(view)
        score = round(max(0.0, min(1.0, score)), 4)
        out.append(Result(c.name, score, score >= c.threshold, c.blocking, detail))
    return out
