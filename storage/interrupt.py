"""Stopping a running DuckDB query: on Ctrl-C, or when a time limit passes.

While DuckDB executes, the main thread sits in C code and Python's own SIGINT handler cannot run until
the query ends: Ctrl-C on a long query did nothing for minutes, or, when DuckDB noticed it first, ended
as a bare "Query interrupted" error. So a watcher thread waits on the signal wakeup fd (which the
C-level handler writes to at once) and on the deadline, and calls `connection.interrupt()`, which is
thread-safe; the query then fails and `QueryWatch.reason` says why.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from types import TracebackType

import duckdb

from storage.errors import QueryError


class QueryTimeout(QueryError):
    """The query ran past its time limit and was stopped; nothing was changed."""


def is_interrupt(exc: BaseException) -> bool:
    """DuckDB stopped a query: after `connection.interrupt()`, or by itself when it saw Ctrl-C first
    (it then reports a plain error and Python's KeyboardInterrupt is gone)."""
    if isinstance(exc, duckdb.InterruptException):
        return True
    return isinstance(exc, (duckdb.Error, RuntimeError)) and "query interrupted" in str(exc).lower()


class QueryWatch:
    """Interrupt `con` on SIGINT (when used from the main thread) or after `timeout` seconds.

    with QueryWatch(con, timeout=5) as watch:
        try:
            con.execute(sql).fetchall()
        except Exception as exc:
            watch.raise_if_stopped(exc)   # KeyboardInterrupt or QueryTimeout when the query was stopped
            raise
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, timeout: float | None = None) -> None:
        if timeout is not None and timeout <= 0:
            raise QueryError(f"{{--timeout}} must be more than 0 seconds, not {timeout:g}")
        self.con = con
        self.timeout = timeout
        self._waiting = timeout is not None  # off once the time limit has fired
        self.reason: str | None = None  # "interrupt" or "timeout" once the watcher stopped the query
        self._read, self._write = os.pipe()
        self._old_wakeup: int | None = None
        self._thread = threading.Thread(target=self._watch, name="query-watch", daemon=True)
        self._deadline = 0.0

    def __enter__(self) -> QueryWatch:
        os.set_blocking(self._write, False)
        try:
            # only the main thread receives signals; elsewhere (a worker, a test runner's thread) the
            # time limit still applies and Ctrl-C is the caller's business
            self._old_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        except ValueError:
            self._old_wakeup = None
        self._deadline = time.monotonic() + (self.timeout or 0.0)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._old_wakeup is not None:
            signal.set_wakeup_fd(self._old_wakeup)
        os.write(self._write, b"\0")  # a zero byte (no signal has number 0) tells the watcher to stop
        self._thread.join()
        os.close(self._read)
        os.close(self._write)

    def _watch(self) -> None:
        while True:
            wait = max(0.0, self._deadline - time.monotonic()) if self._waiting else None
            ready, _, _ = select.select([self._read], [], [], wait)
            if not ready:
                self._waiting = False  # stopped once is enough: from now on wait for __exit__'s zero byte
                self._stop("timeout")
                continue
            data = os.read(self._read, 64)
            if 0 in data:
                return
            if signal.SIGINT in data:
                self._stop("interrupt")

    def _stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.con.interrupt()

    def raise_if_stopped(self, exc: BaseException) -> None:
        """For `exc` raised by the query: raise QueryTimeout after the time limit, KeyboardInterrupt after
        Ctrl-C (whether the watcher or DuckDB saw it first); else return."""
        if self.reason == "interrupt" or (self.reason is None and is_interrupt(exc)):
            raise KeyboardInterrupt
        if self.reason == "timeout":
            raise QueryTimeout(
                f"the query ran longer than {{--timeout}} {self.timeout:g}s and was stopped; nothing was changed. "
                "Narrow it (WHERE, LIMIT) or raise {--timeout}."
            )
