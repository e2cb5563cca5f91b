"""Counting, filtering and reproducible sampling over `personas` and its typed attribute columns.

A sample is ordered by `md5(persona_id || ':' || seed)`: the same seed gives the same personas on any
machine and DuckDB version, independent of import order, and no random state is kept anywhere.
Stratified sampling takes personas round-robin across the column's values (everyone's 1st, then
everyone's 2nd, …), so strata are drawn evenly and a small stratum's shortfall is filled from others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from persona_hub.errors import BadFilter
from persona_hub.fields import flat_columns, ident
from storage import Database, check_read_only, where_clause
from storage.errors import StorageError
from storage.sql import fetch_dicts, quote

_OUT = "persona_id, text, attributes, source, source_line, layout"


@dataclass
class Stratum:
    value: Any
    available: int
    drawn: int


@dataclass
class Sample:
    rows: list[dict[str, Any]]
    requested: int
    seed: int
    stratify_by: str | None = None
    strata: list[Stratum] = field(default_factory=list)

    @property
    def short_strata(self) -> list[Stratum]:
        """Strata with fewer personas than an even share of the sample."""
        if not self.strata:
            return []
        share = self.requested // len(self.strata)
        return [s for s in self.strata if s.available < share]


def _where(con: duckdb.DuckDBPyConnection, where: str | None) -> str:
    """The WHERE clause for `where`: one SQL condition or nothing (storage.where_clause decides)."""
    try:
        return where_clause(where)
    except StorageError as exc:
        raise _bad_filter(con, where, exc) from exc


def _bad_filter(con: duckdb.DuckDBPyConnection, where: str | None, exc: Exception) -> BadFilter:
    message = str(exc).strip().splitlines()[0]
    columns = ", ".join(ident(c) if not c.isidentifier() else c for c, _ in flat_columns(con))
    return BadFilter(
        f"bad {{--where}} ({where!r}): {message}. You can filter on: {columns}; "
        "for example {--where} \"occupation = 'nurse' AND age > 40\"."
    )


def _run(con: duckdb.DuckDBPyConnection, sql: str, where: str | None) -> duckdb.DuckDBPyConnection:
    try:
        check_read_only(sql)
        return con.execute(sql)
    except (duckdb.Error, StorageError) as exc:
        raise _bad_filter(con, where, exc) from exc


def count(db: Database, where: str | None = None) -> int:
    """How many personas match `where` (SQL over the columns of `personas`)."""
    with db.read() as con:
        row = _run(con, f"SELECT count(*) FROM personas {_where(con, where)}", where).fetchone()
    return int(row[0]) if row else 0


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    out = []
    for row in fetch_dicts(cursor):
        if isinstance(row.get("attributes"), str):
            row["attributes"] = json.loads(row["attributes"])
        out.append(row)
    return out


def sample(db: Database, n: int, where: str | None = None, seed: int = 0, stratify_by: str | None = None) -> Sample:
    """Draw `n` personas matching `where`, reproducibly for `seed`; see the module docstring."""
    if n < 0:
        raise BadFilter("-n must be zero or more")
    key = f"md5_number(persona_id || ':' || {quote(str(seed))})"
    with db.read() as con:
        if not stratify_by:
            sql = f"SELECT {_OUT} FROM personas {_where(con, where)} ORDER BY {key} LIMIT {int(n)}"
            return Sample(_rows(_run(con, sql, where)), n, seed)
        column = _column(con, stratify_by)
        base = f"SELECT {_OUT}, {ident(column)} AS _stratum, {key} AS _k FROM personas {_where(con, where)}"
        ranked = (
            f"SELECT *, row_number() OVER (PARTITION BY _stratum ORDER BY _k) AS _rn, "
            f"md5_number(coalesce(CAST(_stratum AS VARCHAR), '') || ':' || {quote(str(seed))}) AS _sk "
            f"FROM ({base})"
        )
        rows = _rows(_run(con, f"SELECT * FROM ({ranked}) ORDER BY _rn, _sk LIMIT {int(n)}", where))
        sizes = _run(con, f"SELECT _stratum, count(*) FROM ({base}) GROUP BY ALL ORDER BY 2 DESC, 1", where).fetchall()
    drawn: dict[str, int] = {}
    for row in rows:
        drawn[repr(row["_stratum"])] = drawn.get(repr(row["_stratum"]), 0) + 1
    strata = [Stratum(value, int(size), drawn.get(repr(value), 0)) for value, size in sizes]
    for row in rows:
        row[column] = row.pop("_stratum")
        for hidden in ("_k", "_rn", "_sk"):
            row.pop(hidden, None)
    return Sample(rows, n, seed, column, strata)


def _column(con: duckdb.DuckDBPyConnection, name: str) -> str:
    columns = {c.lower(): c for c, _ in flat_columns(con)}
    if name.lower() in columns:
        return columns[name.lower()]
    raise BadFilter(f"{{--stratify_by}} {name!r} is not a column; choose one of: {', '.join(columns.values())}")


@dataclass
class Stats:
    total: int
    by_source: list[tuple[str, str, int]]
    imports: list[tuple[Any, ...]]
    fields: list[tuple[str, str, int, int, list[tuple[Any, int]]]]


def stats(db: Database, top: int = 3) -> Stats:
    """Counts by source and layout, by import batch, and per attribute (filled, distinct, top values)."""
    with db.read() as con:
        total_row = con.execute("SELECT count(*) FROM personas").fetchone()
        total = int(total_row[0]) if total_row else 0
        by_source = con.execute(
            "SELECT source, layout, count(*) FROM personas GROUP BY ALL ORDER BY 3 DESC, 1"
        ).fetchall()
        imports = con.execute(
            "SELECT import_id, finished_at, status, imported, duplicates, near_duplicates, rejected "
            "FROM imports ORDER BY started_at"
        ).fetchall()
        field_rows = []
        for fname, sql_type, column in con.execute(
            "SELECT field, sql_type, column_name FROM persona_fields ORDER BY rowid"
        ).fetchall():
            col = ident(column)
            filled, distinct = con.execute(
                f"SELECT count({col}), approx_count_distinct({col}) FROM personas"
            ).fetchone() or (0, 0)
            values: list[tuple[Any, int]] = []
            if sql_type != "JSON":  # lists are counted by element
                source = (
                    f"(SELECT unnest({col}) AS v FROM personas)"
                    if sql_type.endswith("[]")
                    else (f"(SELECT {col} AS v FROM personas)")
                )
                values = [
                    (v, int(c))
                    for v, c in con.execute(
                        f"SELECT v, count(*) FROM {source} WHERE v IS NOT NULL "
                        f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {int(top)}"
                    ).fetchall()
                ]
            field_rows.append((fname, sql_type, int(filled), int(distinct), values))
    return Stats(total, [(s, lay, int(c)) for s, lay, c in by_source], imports, field_rows)
