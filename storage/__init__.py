"""Storage: the DuckDB file, its migrations, the single batching writer and read-only queries; and what
every package shares (the error base, SQL helpers, MinHash, the extension registries).

The names below are loaded on first use, not on `import storage`: an extraction worker imports
`storage.minhash` and needs rensa, not DuckDB and Arrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.lazy import lazy_names

if TYPE_CHECKING:
    from storage.database import DEFAULT_DB, Database, resolve_db_path
    from storage.errors import (
        DatabaseBusy,
        DatabaseMissing,
        QueryError,
        ReadOnlyViolation,
        SchemaTooNew,
        StorageError,
        WriteFailed,
    )
    from storage.filters import BadCondition, filter_expression, where_clause
    from storage.interrupt import QueryTimeout, QueryWatch, is_interrupt
    from storage.migrations import LATEST, MIGRATIONS, migrate
    from storage.readonly import QueryResult, check_read_only, run_query
    from storage.writer import BatchWriter

_WHERE = {
    **dict.fromkeys(["DEFAULT_DB", "Database", "resolve_db_path"], "storage.database"),
    **dict.fromkeys(
        [
            "DatabaseBusy",
            "DatabaseMissing",
            "QueryError",
            "ReadOnlyViolation",
            "SchemaTooNew",
            "StorageError",
            "WriteFailed",
        ],
        "storage.errors",
    ),
    **dict.fromkeys(["BadCondition", "filter_expression", "where_clause"], "storage.filters"),
    **dict.fromkeys(["QueryTimeout", "QueryWatch", "is_interrupt"], "storage.interrupt"),
    **dict.fromkeys(["LATEST", "MIGRATIONS", "migrate"], "storage.migrations"),
    **dict.fromkeys(["QueryResult", "check_read_only", "run_query"], "storage.readonly"),
    "BatchWriter": "storage.writer",
}

__getattr__ = lazy_names("storage", _WHERE)


__all__ = [
    "DEFAULT_DB",
    "LATEST",
    "MIGRATIONS",
    "BadCondition",
    "BatchWriter",
    "Database",
    "DatabaseBusy",
    "DatabaseMissing",
    "QueryError",
    "QueryResult",
    "QueryTimeout",
    "QueryWatch",
    "ReadOnlyViolation",
    "SchemaTooNew",
    "StorageError",
    "WriteFailed",
    "check_read_only",
    "filter_expression",
    "is_interrupt",
    "migrate",
    "resolve_db_path",
    "run_query",
    "where_clause",
]
