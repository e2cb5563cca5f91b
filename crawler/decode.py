"""Reading a response body safely (its text is made in `charsets`).

The body is read raw and decompressed here, in bounded steps (`max_length`), so a gzip bomb costs at
most `max_bytes` of memory before it is cut off; a body larger than the cap is never fully downloaded.
"""

from __future__ import annotations

import zlib

import httpx


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
