"""Reading a response body safely, and turning it into text whatever its charset claims.

The body is read raw and decompressed here, in bounded steps (`max_length`), so a gzip bomb costs at
most `max_bytes` of memory before it is cut off; a body larger than the cap is never fully downloaded.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import httpx
from charset_normalizer import from_bytes


class TooLarge(Exception):
    pass


class BadContentEncoding(Exception):
    pass


class _Identity:
    unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        return data


def _decompressor(encoding: str) -> object:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise BadContentEncoding(f"unsupported Content-Encoding {encoding!r}")


async def read_body(response: httpx.Response, max_bytes: int, *, truncate: bool = False) -> bytes:
    """The decoded body, or TooLarge once it passes `max_bytes` (the rest is not downloaded);
    with `truncate`, its first `max_bytes` instead."""
    declared = response.headers.get("content-length")
    if (
        not truncate
        and declared
        and declared.isdigit()
        and not response.headers.get("content-encoding")
        and int(declared) > max_bytes
    ):
        raise TooLarge(f"Content-Length {declared} is over the {max_bytes}-byte limit")
    decoder = _decompressor(response.headers.get("content-encoding", ""))
    out = bytearray()
    try:
        async for chunk in response.aiter_raw():
            data = chunk
            while data:
                room = max_bytes - len(out) + 1
                piece = decoder.decompress(data, room)  # type: ignore[attr-defined]
                out += piece
                if len(out) > max_bytes:
                    if truncate:
                        return bytes(out[:max_bytes])
                    raise TooLarge(f"body is over the {max_bytes}-byte limit")
                data = decoder.unconsumed_tail  # type: ignore[attr-defined]
    except zlib.error as exc:
        raise BadContentEncoding(f"cannot decompress the body: {exc}") from exc
    return bytes(out)


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)


@dataclass
class Decoded:
    text: str
    charset: str


def decode_text(body: bytes, header_charset: str | None) -> Decoded:
    """Text from bytes: the declared charset (header, then <meta>) if the bytes really are in it,
    else charset-normalizer's best guess, else UTF-8 with replacement characters."""
    declared = [c for c in (header_charset, _meta_charset(body)) if c]
    for charset in declared:
        try:
            return Decoded(body.decode(charset), charset.lower())
        except (UnicodeDecodeError, LookupError):
            continue
    if not declared:
        try:
            return Decoded(body.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            pass
    best = from_bytes(body[:200_000]).best()
    if best is not None:
        return Decoded(body.decode(best.encoding, errors="replace"), best.encoding)
    return Decoded(body.decode("utf-8", errors="replace"), "utf-8")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii", "ignore") if match else None
