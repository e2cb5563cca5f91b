"""Read-only SQL for users: `swarm query`.

Three guards, so that a mistake cannot change anything: each statement is checked with DuckDB's own
parser before anything runs (only SELECT-like statements, a plain EXPLAIN of one and read-only PRAGMAs
pass, and a SELECT may call only table functions that read); the statement then runs on a connection
opened `read_only` that neither installs nor loads extensions (see `Database.read`); and a watcher can
stop it on Ctrl-C or after a time limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

from storage.database import Database
from storage.errors import QueryError, ReadOnlyViolation
from storage.interrupt import QueryWatch

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
# A SELECT can call table functions that change state (enable_logging writes log files, checkpoint,
# enable_profiling, add_grammar_extension, …) or run SQL given as text out of this check's sight
# (query, json_execute_serialized_sql), so only table functions known to read are let through.
_READ_TABLE_FUNCTIONS = {
    "range",
    "generate_series",
    "unnest",
    "glob",
    "summary",
    "repeat",
    "repeat_row",
    "seq_scan",
    "sniff_csv",
    "query_table",
    "histogram",
    "histogram_values",
    "json_each",
    "json_tree",
    "icu_calendar_names",
    "pg_timezone_names",
    "test_all_types",
    "test_vector_types",
    "which_secret",
}
_READ_TABLE_FUNCTION_PREFIXES = ("read_", "parquet_", "duckdb_", "pragma_")
# the one EXPLAIN option that does not run the statement (ANALYZE does: COPY … TO would write its file)
_EXPLAIN_OPTIONS = {"FORMAT"}

# only parses and serialises statements: it has nothing to read and nothing to load
_parser = duckdb.connect(
    ":memory:",
    config={"autoinstall_known_extensions": False, "autoload_known_extensions": False, "enable_external_access": False},
)


def _statement_type(statement: Any) -> str:
    return str(statement.type).rsplit(".", 1)[-1]


def _refuse(what: str) -> ReadOnlyViolation:
    return ReadOnlyViolation(
        f"swarm query is read-only and {what}: nothing was changed. "
        "Use SELECT (or DESCRIBE / SHOW / EXPLAIN); data is changed only by swarm's own commands."
    )


def check_read_only(sql: str) -> None:
    """Raise ReadOnlyViolation (or QueryError) unless `sql` is one statement that only reads."""
    cursor = _parser.cursor()  # a cursor per check: callers may check from several threads
    try:
        kind = _one_statement(cursor, sql)
        if kind == "SELECT":
            _check_select(cursor, sql)
            return
        if kind == "EXPLAIN":
            inner = _explained(cursor, sql)
            if not _is_one_select(cursor, inner):
                raise _refuse("EXPLAIN is allowed only of a read (SELECT, FROM, DESCRIBE, SHOW, …)")
            _check_select(cursor, inner)
            return
        if kind == "PRAGMA":
            match = re.match(r"\s*pragma\s+(\w+)", sql, re.IGNORECASE)
            if match and match.group(1).lower() in _READ_PRAGMAS:
                return
        raise _refuse(f"this is a {kind} statement")
    finally:
        cursor.close()


def _one_statement(cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_short(exc)) from exc
    if not statements:
        raise QueryError("the query is empty")
    if len(statements) > 1:
        raise QueryError("give one statement at a time")
    return _statement_type(statements[0])


def _is_one_select(cursor: duckdb.DuckDBPyConnection, sql: str) -> bool:
    try:
        return _one_statement(cursor, sql) == "SELECT"
    except QueryError:
        return False


def _explained(cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The statement a plain `EXPLAIN` (or `EXPLAIN (FORMAT …)`) shows; refuses ANALYZE and other options."""
    tokens = [pos for pos, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]
    texts = [sql[start:end].strip() for start, end in zip(tokens, [*tokens[1:], len(sql)], strict=True)]
    # texts[0] is EXPLAIN: the parser said so. What follows is the statement, as in `EXPLAIN (SELECT 1)`,
    # unless it is an option list, as in `EXPLAIN (FORMAT JSON) SELECT 1`.
    start = 1
    if len(texts) > 1 and texts[1] == "(" and not _is_one_select(cursor, sql[tokens[1] :]):
        close = texts.index(")", 1) if ")" in texts[1:] else len(texts)
        options = [texts[i + 1].upper() for i in range(1, close) if texts[i] in ("(", ",")]
        refused = sorted(set(options) - _EXPLAIN_OPTIONS)
        if refused:
            raise _refuse(
                f"EXPLAIN may take only the FORMAT option here, not {', '.join(refused)} (ANALYZE runs the statement)"
            )
        start = close + 1
    if start < len(texts) and texts[start].upper() in ("ANALYZE", "ANALYSE"):
        raise _refuse("EXPLAIN ANALYZE runs its statement; use plain EXPLAIN")
    return sql[tokens[start] :] if start < len(tokens) else ""


def _check_select(cursor: duckdb.DuckDBPyConnection, sql: str) -> None:
    row = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True, "error_message": "no answer"}
    if tree.get("error"):
        # a SELECT-type statement the serializer cannot show (PIVOT) cannot be checked, so it does not run
        raise _refuse(f"this statement could not be checked ({tree.get('error_message')})")
    for name in _table_functions(tree):
        if name not in _READ_TABLE_FUNCTIONS and not name.startswith(_READ_TABLE_FUNCTION_PREFIXES):
            raise _refuse(f"the table function {name}() may change state or run other SQL")


def _table_functions(node: Any) -> Iterator[str]:
    """The names (lower case) of every table function the parsed statement calls, at any depth."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            yield str(node["function"].get("function_name", "")).lower()
        for value in node.values():
            yield from _table_functions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _table_functions(value)


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    cursor: duckdb.DuckDBPyConnection
    watch: QueryWatch

    def batches(self, size: int = 2048) -> Iterator[list[tuple[Any, ...]]]:
        """Rows in batches; a query stopped while rows stream ends as KeyboardInterrupt or QueryTimeout."""
        while True:
            try:
                rows = self.cursor.fetchmany(size)
            except Exception as exc:  # DuckDB reports an interrupt as duckdb.Error or a bare RuntimeError
                self.watch.raise_if_stopped(exc)
                if not isinstance(exc, duckdb.Error):
                    raise
                raise QueryError(_short(exc)) from exc
            if not rows:
                return
            yield rows


@contextmanager
def run_query(db: Database, sql: str, *, timeout: float | None = None, sealed: bool = False) -> Iterator[QueryResult]:
    """Check, then run `sql` on a read-only connection; rows are streamed from the result.

    Ctrl-C stops the query and raises KeyboardInterrupt; past `timeout` seconds it is stopped and
    QueryTimeout is raised. `sealed` also shuts off every file and network access (see `Database.read`).
    """
    check_read_only(sql)
    with db.read(sealed=sealed) as con, QueryWatch(con, timeout) as watch:
        try:
            cursor = con.execute(sql)
        except Exception as exc:  # DuckDB reports an interrupt as duckdb.Error or a bare RuntimeError
            watch.raise_if_stopped(exc)
            if not isinstance(exc, duckdb.Error):
                raise
            message = _short(exc)
            if "read-only" in message.lower():
                raise ReadOnlyViolation(f"refused, nothing was changed: {message}") from exc
            if isinstance(exc, duckdb.PermissionException) and sealed:
                raise QueryError(f"this query may not read files or the network: {message}") from exc
            raise QueryError(message) from exc
        description = cursor.description or []
        yield QueryResult(
            columns=[col[0] for col in description],
            types=[str(col[1]) for col in description],
            cursor=cursor,
            watch=watch,
        )
