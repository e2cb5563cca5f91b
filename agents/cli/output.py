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
from rich.table import Table

FORMATS = ("table", "csv", "json", "jsonl")
TABLE_ROW_LIMIT = 1000  # a terminal table beyond this is unreadable; csv/json print everything


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
        table = Table(*columns, show_lines=False, highlight=False)
        more = False
        for batch in batches:
            for row in batch:
                if n >= TABLE_ROW_LIMIT:
                    more = True
                    break
                table.add_row(*(_cell(plain(v, t)) for v, t in zip(row, types, strict=True)))
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
        writer = csv.writer(out, lineterminator="\n")
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
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
