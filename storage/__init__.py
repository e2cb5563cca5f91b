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
from storage.migrations import LATEST, MIGRATIONS, migrate
from storage.readonly import QueryResult, check_read_only, run_query
from storage.writer import BatchWriter

__all__ = [
    "DEFAULT_DB",
    "LATEST",
    "MIGRATIONS",
    "BatchWriter",
    "Database",
    "DatabaseBusy",
    "DatabaseMissing",
    "QueryError",
    "QueryResult",
    "ReadOnlyViolation",
    "SchemaTooNew",
    "StorageError",
    "WriteFailed",
    "check_read_only",
    "migrate",
    "resolve_db_path",
    "run_query",
]
