"""Turning a page's bytes into text whatever its charset claims, or saying that nothing readable came out.

A declared charset (the Content-Type header, then `<meta charset>`) is used only if it is one a
browser would use (the WHATWG Encoding Standard's list: not `undefined`, `punycode`, `utf-7`, `rot13`
…) and the bytes really decode in it into plausible text; otherwise charset-normalizer decides. Text is
implausible when it is full of NULs and control characters (UTF-16 read as UTF-8 decodes "cleanly" into
one NUL every other character) or, for a single-byte charset that decodes any bytes at all, when
charset-normalizer's mess detector finds mojibake (Shift-JIS read as ISO-8859-1).
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass, field

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

# The WHATWG Encoding Standard's encodings (what browsers decode), by a label Python knows them by.
_WHATWG = (
    *("utf-8", "ibm866", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "cp874"),
    *(f"iso-8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)),
    *(f"cp125{n}" for n in range(9)),
    *("gbk", "gb18030", "big5", "euc-jp", "iso-2022-jp", "shift_jis", "euc-kr", "utf-16-be", "utf-16-le", "utf-16"),
)
_MULTIBYTE = {"utf-8", "gbk", "gb18030", "big5", "euc_jp", "iso2022_jp", "shift_jis", "euc_kr"}
# browsers read these labels as windows-1252 (a superset that gives 0x80–0x9F their printable meaning)
_AS_CP1252 = {"iso8859-1", "ascii"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")
_SAMPLE = 8_000  # characters judged: enough to tell mojibake, cheap on every page
_MAX_BAD = 0.01  # share of NULs, control and replacement characters that makes text implausible
_MAX_MESS = 0.2  # charset-normalizer's own default threshold for "this is not that charset"
_GARBLED = 0.05  # past this share of bad characters the page has no readable text at all


@dataclass
class Decoded:
    text: str
    charset: str
    notes: list[str] = field(default_factory=list)  # labels ignored and why, for the page's metadata
    garbled: bool = False  # no charset gave readable text: the page fails with bad_charset


@functools.cache
def _usable() -> frozenset[str]:
    return frozenset(codecs.lookup(name).name for name in _WHATWG)


def codec_for(label: str) -> str | None:
    """The Python codec a browser-usable charset label names, or None for a label a browser would not
    use (unknown, or a codec that is not a web text encoding)."""
    try:
        name = codecs.lookup(label.strip().strip("'\"")).name
    except (LookupError, ValueError):
        return None
    if name in _AS_CP1252:
        return "cp1252"
    return name if name in _usable() else None


def _bad_share(text: str) -> float:
    sample = text[:_SAMPLE]
    return len(_CONTROL.findall(sample)) / max(1, len(sample))


def _plausible(text: str, codec: str) -> bool:
    if _bad_share(text) > _MAX_BAD:
        return False
    return codec in _MULTIBYTE or codec.startswith("utf") or mess_ratio(text[:_SAMPLE], _MAX_MESS) < _MAX_MESS


def decode_text(body: bytes, header_charset: str | None) -> Decoded:
    """Text from bytes: see the module docstring. Never raises."""
    notes: list[str] = []
    fallback: Decoded | None = None
    tried: set[str] = set()
    for label in (c for c in (header_charset, _meta_charset(body)) if c):
        codec = codec_for(label)
        if codec is None:
            notes.append(f"charset {label!r} is not one browsers use: ignored")
            continue
        tried.add(codec)
        decoded = _strict(body, codec)
        if decoded is None:
            notes.append(f"the bytes are not {label}")
        elif _plausible(decoded, codec):
            return Decoded(decoded, codec, notes)
        else:
            notes.append(f"text decoded as {label} looks garbled")
            fallback = fallback or Decoded(decoded, codec)
    # undeclared (or declared wrongly): UTF-8 if the bytes are UTF-8, then what a browser in a Western
    # locale assumes (windows-1252), then charset-normalizer's guess, which picks other single-byte
    # Latin charsets for short Western text too readily (cp1250 for French: "brűlée")
    for codec in ("utf-8", "cp1252"):
        decoded = None if codec in tried else _strict(body, codec)
        if decoded is not None and _plausible(decoded, codec):
            return Decoded(decoded, codec, notes)
    best = from_bytes(body[:200_000]).best()
    if best is not None:
        decoded = body.decode(best.encoding, errors="replace")
        if _plausible(decoded, best.encoding) or fallback is None:
            notes.append(f"read as {best.encoding} (detected)")
            return Decoded(decoded, best.encoding, notes, garbled=_bad_share(decoded) > _GARBLED)
    chosen = fallback or Decoded(body.decode("utf-8", errors="replace"), "utf-8")
    return Decoded(chosen.text, chosen.charset, notes, garbled=_bad_share(chosen.text) > _GARBLED)


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except UnicodeDecodeError:
        return None


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii", "ignore") if match else None
