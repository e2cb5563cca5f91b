"""Printing rows as a table, CSV, a JSON array or JSON lines — the same for every command."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import json
import sys
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

OUTPUT_FORMATS = ("table", "csv", "json", "jsonl")
TABLE_ROW_LIMIT = 1000  # a terminal table beyond this is unreadable; csv/json print everything

# What a terminal would obey rather than show: C0 and C1 control characters (ESC starts colour, title and
# screen-clearing sequences; CR and BS overwrite what was printed) and the bidirectional controls that
# reorder text on screen. Newline and tab stay, so a cell can hold paragraphs.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (0x09, 0x0A)}
_CONTROLS.update({c: f"\\u{c:04x}" for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def terminal_safe(text: str) -> str:
    """`text` with every control character written out as an escape (`\\x1b`), for a terminal to show."""
    return text.translate(_CONTROLS)


def literal(value: object) -> Text:
    """`value` as text a terminal shows as it is: no rich markup (`[bold]`), no emoji codes, no controls."""
    return Text(terminal_safe(str(value)))


def _default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def plain(value: Any, sql_type: str = "") -> Any:
    """A value as JSON would carry it: JSON columns parsed, dates as ISO text, and so on."""
    if value is None:
        return None
    if sql_type == "JSON" and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return _default(value)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_default)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return dumps(value)
    return str(value)


class _RowsEndInNewline:
    """A file for csv.writer: Python's csv quotes a field holding a carriage return only when the line
    terminator has one, so rows are made with \\r\\n (every \\r in data quoted) and written ending in \\n."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, row: str) -> int:
        return self.out.write(row[:-2] + "\n" if row.endswith("\r\n") else row)


def write_rows(
    fmt: str,
    columns: Sequence[str],
    batches: Iterable[Sequence[Sequence[Any]]],
    types: Sequence[str] | None = None,
    out: TextIO | None = None,
    console: Console | None = None,
) -> int:
    """Write rows (given in batches, so large results stream) in `fmt`; return the number written."""
    out = out or sys.stdout
    types = list(types or [""] * len(columns))
    n = 0
    if fmt == "table":
        table = Table(*(Column(header=literal(c)) for c in columns), show_lines=False, highlight=False)
        more = False
        for batch in batches:
            for row in batch:
                if n >= TABLE_ROW_LIMIT:
                    more = True
                    break
                table.add_row(*(literal(_cell(plain(v, t))) for v, t in zip(row, types, strict=True)))
                n += 1
            if more:
                break
        console = console or Console(file=out, soft_wrap=False)
        console.print(table)
        note = f"{n} row{'s' if n != 1 else ''}"
        if more:
            note = f"first {n} rows shown; use --format csv/jsonl for all of them"
        console.print(f"[dim]{note}[/dim]")
        return n
    if fmt == "csv":
        writer = csv.writer(_RowsEndInNewline(out), lineterminator="\r\n")
        writer.writerow(columns)
        for batch in batches:
            for row in batch:
                writer.writerow([_cell(plain(v, t)) for v, t in zip(row, types, strict=True)])
                n += 1
        return n
    if fmt in ("json", "jsonl"):
        if fmt == "json":
            out.write("[")
        for batch in batches:
            for row in batch:
                record = {c: plain(v, t) for c, v, t in zip(columns, row, types, strict=True)}
                if fmt == "json":
                    out.write(("\n" if n == 0 else ",\n") + dumps(record))
                else:
                    out.write(dumps(record) + "\n")
                n += 1
        if fmt == "json":
            out.write("\n]\n" if n else "]\n")
        return n
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
