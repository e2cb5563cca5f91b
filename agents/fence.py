"""Untrusted text in a prompt stays data: it is fenced, and nothing inside it can pass for the prompt's
own structure.

Web pages reach every prompt of a cycle, directly (the sources, the digest) or quoted by the turns of
the conversation (the transcript). A page could close a fence early, forge a numbered source header
(`[2] World Health Organization — …`, which the assistant would cite and `sources` would credit to the
real source 2), forge a turn (`USER:` at the start of a line) or smuggle in a chat template's special
tokens. So:

- a fence's lines carry a tag derived from the fenced text (SHA-256): the text cannot contain the tag of
  itself, and the same text always gets the same tag, so a prompt is the same on `--resume` and its
  cached answer is reused;
- inside, runs of three or more `<` or `>` (the fences' own marks) are cut to two, role labels at the
  start of a line are marked as quoted, `<|…|>` tokens are spaced apart, and in page text `[n]`
  becomes `(n)`, so only the prompt's own headers read as source numbers.
"""

from __future__ import annotations

import hashlib
import re

_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")  # what a model or splitlines() may read as a line end
_FENCE_MARKS = re.compile(r"<{3,}|>{3,}")
_SPECIAL_TOKEN = re.compile(r"<\||\|>")  # ChatML and Llama 3 style control tokens: <|im_start|>, <|eot_id|>
# a label a transcript or chat template starts a turn with, at the start of a line (after any markdown)
_ROLE = re.compile(
    r"^([ \t>#*_-]*)(user|assistant|system|developer|tool|human)([ \t*_]*):", re.IGNORECASE | re.MULTILINE
)
_NUMBER = re.compile(r"[\[［]\s*(\d{1,3})\s*[\]］]")
_SPACE = re.compile(r"\s+")
TAG_LENGTH = 12  # hex digits: 48 bits, past any guess a page could make
# every fence a prompt has, by name (the quality checks look for a name and its tag in what a model wrote)
SOURCES, DIGEST, TRANSCRIPT, CLAIMS = "SOURCES", "WEB PAGES", "CONVERSATION", "CLAIMS"
NAMES = (SOURCES, DIGEST, TRANSCRIPT, CLAIMS)


def tag(text: str) -> str:
    """The fence tag of `text`: the same for the same text, and not something the text can contain."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:TAG_LENGTH]


def fence(name: str, text: str) -> str:
    """`text` between the lines `<<<NAME tag (untrusted data)` and `NAME tag>>>`; the only such lines in
    the result, whatever `text` holds (its own fence marks are cut)."""
    body = _FENCE_MARKS.sub(lambda m: m.group()[:2], text)
    mark = f"{name} {tag(body)}"
    return f"<<<{mark} (untrusted data)\n{body}\n{mark}>>>"


def quoted(text: str) -> str:
    """Untrusted text whose line starts cannot open a turn and whose characters cannot close a fence or
    make a chat template's control token. Its `[n]` are kept (a turn's citations stay readable)."""
    text = _LINE_BREAKS.sub("\n", text)
    text = _FENCE_MARKS.sub(lambda m: m.group()[:2], text)
    text = _SPECIAL_TOKEN.sub(lambda m: " ".join(m.group()), text)
    return _ROLE.sub(r"\1\2\3 (quoted):", text)


def page_text(text: str) -> str:
    """Web page text as data: `quoted`, and `[n]` written `(n)` so it cannot pass for a source number."""
    return _NUMBER.sub(r"(\1)", quoted(text))


def page_line(text: str) -> str:
    """A page's title or URL for a source header: `page_text` on one line (it cannot start a line of
    its own)."""
    return _SPACE.sub(" ", page_text(text)).strip()


def transcript(messages: list[dict[str, str]]) -> str:
    """The conversation as `ROLE: text` turns, each text `quoted`: a line inside a turn cannot forge the
    next one."""
    return "\n\n".join(f"{m['role'].upper()}: {quoted(m['content'])}" for m in messages)
