"""Read-only SQL for users: `swarm query`.

Two guards, so that a mistake cannot change anything: each statement's type is checked with DuckDB's
own parser before anything runs (only SELECT-like statements, EXPLAIN and read-only PRAGMAs pass), and
the statement then runs on a connection opened `read_only`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

from storage.database import Database
from storage.errors import QueryError, ReadOnlyViolation

_ALLOWED = {"SELECT", "EXPLAIN"}
_READ_PRAGMAS = {
    "table_info",
    "show_tables",
    "show_tables_expanded",
    "database_size",
    "storage_info",
    "version",
    "show",
    "database_list",
    "functions",
    "collations",
    "platform",
    "metadata_info",
}
_parser = duckdb.connect(":memory:")


def _statement_type(statement: Any) -> str:
    return str(statement.type).rsplit(".", 1)[-1]


def check_read_only(sql: str) -> None:
    """Raise ReadOnlyViolation unless `sql` is one statement that only reads."""
    try:
        statements = _parser.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_short(exc)) from exc
    if not statements:
        raise QueryError("the query is empty")
    if len(statements) > 1:
        raise QueryError("give one statement at a time")
    kind = _statement_type(statements[0])
    if kind in _ALLOWED:
        return
    if kind == "PRAGMA":
        match = re.match(r"\s*pragma\s+(\w+)", sql, re.IGNORECASE)
        if match and match.group(1).lower() in _READ_PRAGMAS:
            return
    raise ReadOnlyViolation(
        f"swarm query is read-only and this is a {kind} statement: nothing was changed. "
        "Use SELECT (or DESCRIBE / SHOW / EXPLAIN); data is changed only by swarm's own commands."
    )


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    cursor: duckdb.DuckDBPyConnection

    def batches(self, size: int = 2048) -> Iterator[list[tuple[Any, ...]]]:
        while True:
            rows = self.cursor.fetchmany(size)
            if not rows:
                return
            yield rows


@contextmanager
def run_query(db: Database, sql: str) -> Iterator[QueryResult]:
    """Check, then run `sql` on a read-only connection; rows are streamed from the result."""
    check_read_only(sql)
    with db.read() as con:
        try:
            cursor = con.execute(sql)
        except duckdb.Error as exc:
            message = _short(exc)
            if "read-only" in message.lower():
                raise ReadOnlyViolation(f"refused, nothing was changed: {message}") from exc
            raise QueryError(message) from exc
        description = cursor.description or []
        yield QueryResult(
            columns=[col[0] for col in description],
            types=[str(col[1]) for col in description],
            cursor=cursor,
        )
