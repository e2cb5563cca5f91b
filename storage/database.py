"""Opening the DuckDB file so that one process can write while others read.

DuckDB lets one process hold a file read-write, or many hold it read-only, never both at once. So no
process keeps the file open: a writer opens it for one batch and closes it (~20 ms), a reader opens it
read-only for one query. Whoever finds the file locked retries with a short backoff until
`lock_timeout`, which is what lets `swarm query` watch a run's tables grow while the run writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from storage.errors import DatabaseBusy, DatabaseMissing, StorageError
from storage.migrations import LATEST, applied_versions, check_not_newer, migrate

DEFAULT_DB = "swarm.duckdb"
DEFAULT_LOCK_TIMEOUT = 30.0  # seconds a command waits for another process's write to finish

# One DuckDB instance per file per process: opening the same file read-only and read-write from two
# threads of one process is an error in DuckDB, so every open in this process is serialised per path.
_path_locks: dict[str, threading.RLock] = {}
_path_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.RLock:
    with _path_locks_guard:
        return _path_locks.setdefault(path, threading.RLock())


def resolve_db_path(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """`--db` wins over `SWARM_DB`, which wins over `./swarm.duckdb`."""
    value = cli_value or os.environ.get("SWARM_DB") or DEFAULT_DB
    return Path(value).expanduser()


# Every read connection: no extension is installed or loaded on demand (a query naming an http:// file
# would otherwise download httpfs), and no Python variable is read as a table.
_READ_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
}
# A sealed read (for a view that serves other people) also reads no file but the database, reaches no
# network, and cannot turn either back on: DuckDB refuses to change a locked configuration. Its memory is
# bounded too (DuckDB's default is 80 % of the machine's), so that one query cannot take the machine.
_SEALED_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    **_READ_CONFIG,
    "enable_external_access": False,
    "memory_limit": "2GB",
    "max_temp_directory_size": "2GB",
    "lock_configuration": True,
}


def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def _holder(exc: Exception) -> str:
    match = re.search(r"\(PID (\d+)\)", str(exc))
    return f"process {match.group(1)}" if match else "another process"


class Database:
    """A DuckDB file shared by one writer and any number of readers in other processes.

    db = Database("swarm.duckdb")
    with db.write() as con:          # migrates on first open, commits on exit
        con.execute("INSERT …")
    with db.read() as con:           # read-only, waits while a writer holds the file
        con.execute("SELECT …").fetchall()
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.path = Path(path).expanduser()
        self.lock_timeout = lock_timeout
        self._migrated = False

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _open(
        self,
        read_only: bool,
        deadline: float,
        config: dict[str, str | bool | int | float | list[str]] | None = None,
    ) -> duckdb.DuckDBPyConnection:
        delay = 0.005
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=config or {})
                with contextlib.suppress(duckdb.Error):  # a sealed connection's settings are locked
                    con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout, amid output
                return con
            except duckdb.IOException as exc:
                if not _is_lock_conflict(exc):
                    # a folder, a file that is not a database, a disk that refuses: one line, not a traceback
                    first = str(exc).strip().splitlines()[0].removeprefix("IO Error: ")
                    message = f"cannot open {self.path} as a DuckDB database: {first}; check {{--db}}"
                    raise StorageError(message) from exc
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(
                        f"{self.path} is held by {_holder(exc)} and was not released within "
                        f"{self.lock_timeout:g}s; wait for it to finish or raise {{--wait}}."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 1.5, 0.1)

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for one unit of work; the file is released on exit."""
        key = str(self.path.resolve())
        with _lock_for(key):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._open(read_only=False, deadline=time.monotonic() + self.lock_timeout)
            try:
                if not self._migrated:
                    migrate(con, path=str(self.path))
                    self._migrated = True
                yield con
            finally:
                con.close()

    @contextmanager
    def read(self, *, sealed: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection that installs and loads no extension; upgrades an older file first
        (which needs a brief write). `sealed` also shuts off every file but this one and the network,
        and locks the configuration so that no statement can turn them back on."""
        if not self.path.exists():
            raise DatabaseMissing(
                f"no database at {self.path}",
                hint="import personas first (swarm personas import FILE), or point {--db} or SWARM_DB at a file",
            )
        key = str(self.path.resolve())
        with _lock_for(key):
            config = _SEALED_CONFIG if sealed else _READ_CONFIG
            con = self._open(read_only=True, deadline=time.monotonic() + self.lock_timeout, config=config)
            try:
                versions = applied_versions(con)
                check_not_newer(versions, str(self.path))
            except BaseException:
                con.close()  # a refused file must not stay open (and locked) in this process
                raise
            if (max(versions) if versions else 0) >= LATEST:
                try:
                    yield con
                finally:
                    con.close()
                return
            con.close()
        with self.write():
            pass
        with self.read(sealed=sealed) as con:
            yield con
