"""Encodings before DuckDB reads a file: UTF-16 is converted, and for JSON documents (read whole)
the lines that are not UTF-8 are found.

Line-based files are checked as they are read, a line that is not UTF-8 rejected with its number:
JSONL and TXT by `lines`, CSV and TSV by DuckDB's reader (`sources`). For the others a streaming
decode of the file is cheap (a few hundred MB/s); only when it fails do we look at each line.
"""

from __future__ import annotations

import codecs
import gzip
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from persona_hub.errors import UnsupportedFile

_CHUNK = 16 * 1024 * 1024
_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass
class EncodingScan:
    readable_path: Path  # what DuckDB should read (the file or a cleaned copy)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, excerpt)
    converted_from: str | None = None  # e.g. "utf-16" when the file was re-encoded
    temp_dir: tempfile.TemporaryDirectory[str] | None = None

    def cleanup(self) -> None:
        if self.temp_dir is not None:
            self.temp_dir.cleanup()
            self.temp_dir = None


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _is_valid_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with _open(path) as fh:
        try:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def scan(path: Path, *, validate: bool = True) -> EncodingScan:
    """Check `path` line by line only if it is not clean UTF-8; see the module docstring.

    `validate=False` only converts UTF-16, for readers that check UTF-8 themselves (DuckDB's CSV
    reader rejects a bad line with its number)."""
    try:
        with _open(path) as fh:
            head = fh.read(4)
    except (OSError, EOFError) as exc:  # not gzip after all, a file that cannot be read
        raise UnsupportedFile(f"{path}: cannot be read ({exc})") from exc
    if head.startswith(_BOMS):
        return _convert_utf16(path)
    if not validate or _is_valid_utf8(path):
        return EncodingScan(readable_path=path)
    temp_dir = tempfile.TemporaryDirectory(prefix="swarm-import-")
    cleaned = Path(temp_dir.name) / (path.stem.removesuffix(".gz") + ".utf8")
    bad: list[tuple[int, str]] = []
    with _open(path) as src, cleaned.open("wb") as dst:
        for number, raw in enumerate(src, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                bad.append((number, raw.decode("utf-8", "replace").rstrip("\r\n")[:200]))
                dst.write(b"\n")
            else:
                dst.write(raw)
    return EncodingScan(readable_path=cleaned, bad_lines=bad, temp_dir=temp_dir)


def _convert_utf16(path: Path) -> EncodingScan:
    temp_dir = tempfile.TemporaryDirectory(prefix="swarm-import-")
    cleaned = Path(temp_dir.name) / (path.stem + ".utf8")
    with _open(path) as src:
        text = src.read().decode("utf-16")
    cleaned.write_text(text, encoding="utf-8")
    return EncodingScan(readable_path=cleaned, converted_from="utf-16", temp_dir=temp_dir)
