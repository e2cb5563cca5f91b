"""The lines of a JSONL or TXT file as a stream of Arrow batches `(line, rec)`, read in blocks.

Why not DuckDB's CSV reader, as before: numbering its lines takes `row_number() OVER ()`, which either
runs on one thread or needs the whole file in a table first (the file's size again in memory: 16 GB
for 20 million personas). Here each block of the file becomes one Arrow string array without copying
a byte (offsets found by numpy at the line ends), so a line's number is its place in the file, DuckDB
reads the stream on every core, and memory holds a few blocks whatever the file's size.

A line keeps its line end (`\\n`, `\\r\\n`): JSON allows whitespace after a value, and the rare readers
of the raw line (reject messages, TXT) strip it. A line that is blank, not UTF-8, or over
MAX_LINE_BYTES is no record (null); the last two are kept in `rejects` with their reason.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from persona_hub.errors import RejectReason, UnsupportedFile

BLOCK_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024  # as DuckDB's readers allow
SCHEMA = pa.schema([("line", pa.int64()), ("rec", pa.string())])
_BLANK_STARTS = np.frombuffer(b" \r\n", np.uint8)  # a line of spaces only is blank, as when DuckDB read lines
TOO_LONG_DETAIL = "a line of over 64 MB"


class Lines:
    """One pass over a file's lines; `rejects` and `records` are complete once the stream is read."""

    def __init__(self, path: Path, *, limit: int | None = None):
        self.path = path
        self.limit = limit  # read only this many lines (the head of a file, for its layout and types)
        self.rejects: list[tuple[int, str, str]] = []  # (line, reason, detail)
        self.records = 0  # lines that are not blank, rejected ones included
        self.failure: UnsupportedFile | None = None  # why the file could not be read to the end

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(SCHEMA, self._batches())

    def _open(self) -> io.BufferedIOBase:
        if self.path.suffix.lower() == ".gz":
            return gzip.open(self.path, "rb")
        return self.path.open("rb")

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._read()
        except (OSError, EOFError, zlib.error) as exc:  # a damaged .gz file, a disk that fails
            # DuckDB, reading the stream, reports any error as its own: the reader keeps the real one
            self.failure = UnsupportedFile(f"{self.path}: cannot be read to the end ({exc}); nothing was imported")
            raise self.failure from exc

    def _read(self) -> Iterator[pa.RecordBatch]:
        first = 1
        rest: bytes | bytearray = b""
        skipping = False  # inside a line too long to keep, until its end
        with self._open() as fh:
            if fh.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:  # a byte-order mark is not part of the first record
                fh.seek(0)
            while self.limit is None or first <= self.limit:
                # one new buffer a block, read into after the last block's unfinished line: the batch is
                # a view of it (joining and slicing bytes took two more copies of every block)
                data = bytearray(len(rest) + BLOCK_BYTES)
                data[: len(rest)] = rest
                got = fh.readinto(memoryview(data)[len(rest) :])
                del data[len(rest) + got :]
                if not got:
                    if data and not skipping:  # the last line, without a line end
                        yield self._batch(data + b"\n", first)
                    return
                end = data.rfind(b"\n") + 1
                if skipping and end:
                    skipping, data = False, data[data.find(b"\n") + 1 :]
                    first += 1
                    end = data.rfind(b"\n") + 1
                if end == 0:
                    rest = b"" if skipping else data
                    if len(data) > MAX_LINE_BYTES and not skipping:
                        self._reject(first, RejectReason.TOO_LONG, TOO_LONG_DETAIL)
                        skipping, rest = True, b""
                    continue
                batch = self._batch(memoryview(data)[:end], first)
                first += batch.num_rows
                rest = bytes(data[end:])
                yield batch

    def _reject(self, line: int, reason: str, detail: str) -> None:
        self.rejects.append((line, reason, detail))
        self.records += 1

    def _batch(self, data: bytes | bytearray | memoryview, first: int) -> pa.RecordBatch:
        """The lines of `data` (which ends with a line end) as one batch, numbered from `first`."""
        raw = np.frombuffer(data, np.uint8)
        ends = np.flatnonzero(raw == 10) + 1
        count = len(ends)
        if self.limit is not None:
            count = min(count, self.limit - first + 1)
            ends = ends[:count]
        offsets = np.zeros(count + 1, np.int32)
        offsets[1:] = ends
        starts = offsets[:-1]
        valid = np.ones(count, bool)
        # only lines that start with a space or a line end can be blank; look at those one by one
        for i in np.flatnonzero(np.isin(raw[starts], _BLANK_STARTS)):
            if not bytes(data[starts[i] : ends[i]]).rstrip(b"\r\n").strip(b" "):
                valid[i] = False
        for i in np.flatnonzero(np.diff(offsets) > MAX_LINE_BYTES):
            valid[i] = False
            self._reject(first + int(i), RejectReason.TOO_LONG, TOO_LONG_DETAIL)
        text = pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))
        try:
            text.validate(full=True)
        except pa.ArrowInvalid:  # some line is not UTF-8: find which (rare, so line by line)
            for i in np.flatnonzero(valid):
                piece = bytes(data[starts[i] : ends[i]])
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError:
                    valid[i] = False
                    excerpt = piece.decode("utf-8", "replace").rstrip("\r\n")[:200]
                    self._reject(first + int(i), RejectReason.BAD_ENCODING, f"not UTF-8: {excerpt}")
        self.records += int(valid.sum())
        bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
        text = pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data), bitmap)
        numbers = pa.array(np.arange(first, first + count, dtype=np.int64))
        return pa.record_batch([numbers, text], schema=SCHEMA)
