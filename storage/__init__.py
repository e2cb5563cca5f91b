"""Storage: the DuckDB file, its migrations, the single batching writer and read-only queries."""

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
