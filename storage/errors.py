"""Errors raised by the storage layer.

    StorageError
     ├── DatabaseMissing      the database file does not exist (nothing imported yet)
     ├── DatabaseBusy         another process held the lock for longer than we were willing to wait
     ├── SchemaTooNew         the file was written by a newer persona-swarm
     ├── ReadOnlyViolation    a query tried to change something
     ├── QueryError           DuckDB refused the SQL (syntax, unknown table, …)
     └── WriteFailed          a batch could not be written; its rows were saved to a dead-letter file

The CLI turns these into one-line messages; nothing below the CLI prints.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: every storage failure a user can cause or meet."""


class DatabaseMissing(StorageError):
    pass


class DatabaseBusy(StorageError):
    pass


class SchemaTooNew(StorageError):
    pass


class ReadOnlyViolation(StorageError):
    pass


class QueryError(StorageError):
    pass


class WriteFailed(StorageError):
    pass
