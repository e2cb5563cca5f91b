"""The single writer: rows from many coroutines or threads, written in batches from one thread.

`submit` only appends to an in-memory buffer, so it never blocks the event loop. A background thread
flushes when `flush_interval` has passed since the oldest pending row or `max_batch` rows are waiting:
it opens the database, appends each table's rows as one Arrow batch (`INSERT … BY NAME SELECT`, never
a row at a time), and closes the file again so readers in other processes get their turn.

If a batch cannot be written (a bug, a full disk), its rows go to `<db>.failed-writes.jsonl` and the
error is raised from the next `flush()`/`close()`: nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage.database import Database
from storage.errors import DatabaseBusy, WriteFailed


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


class BatchWriter:
    """Buffer rows per table and write them in batches from one background thread.

        writer = BatchWriter(db)
        writer.submit("pages", {"page_id": "…", "url": "…"})   # from any coroutine or thread
        await writer.aflush()                                    # wait until written
        writer.close()

    Dicts and lists are stored as JSON text, so JSON columns take them as they are. `on_conflict`
    maps a table to "ignore" to make re-submitted rows with an existing key a no-op (idempotent writes),
    or to "replace" to let them take the old row's place (the table needs a PRIMARY KEY or UNIQUE
    constraint for either).
    """

    def __init__(
        self,
        db: Database,
        *,
        flush_interval: float = 0.5,
        max_batch: int = 5000,
        max_pending: int = 100_000,
        on_conflict: Mapping[str, str] | None = None,
        busy_patience: float = 600.0,
    ) -> None:
        self.db = db
        self.busy_patience = busy_patience
        self.busy_waits = 0  # lock timeouts waited out
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.on_conflict = dict(on_conflict or {})
        self.batches_written = 0
        self.rows_written = 0
        self._pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._pending_count = 0
        self._oldest: float | None = None
        self._submitted = 0
        self._done = 0
        self._error: BaseException | None = None
        self._closing = False
        self._flush_now = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="swarm-writer", daemon=True)
        self._thread.start()

    # -- producers ---------------------------------------------------------------------------------
    def submit(self, table: str, row: Mapping[str, Any]) -> None:
        """Queue one row for `table`; returns at once."""
        converted = {key: _jsonable(value) for key, value in row.items()}
        with self._cond:
            if self._closing:
                raise WriteFailed("the writer is closed; no more rows can be submitted")
            self._pending[table].append(converted)
            self._pending_count += 1
            self._submitted += 1
            if self._oldest is None:
                self._oldest = time.monotonic()
            if self._pending_count >= self.max_batch:
                self._cond.notify_all()

    async def put(self, table: str, row: Mapping[str, Any]) -> None:
        """Like `submit`, but waits (without blocking the loop) while the backlog is over `max_pending`."""
        while self.backlog >= self.max_pending:
            await asyncio.sleep(self.flush_interval / 4)
        self.submit(table, row)

    def stop_waiting(self) -> None:
        """Give up waiting out a busy file: the batch being written goes to the dead-letter file now
        (what a user's second Ctrl-C asks for while a run flushes)."""
        self.busy_patience = 0.0

    @property
    def failure(self) -> str | None:
        """The last write failure not yet raised to a caller, as text (None while writes succeed)."""
        error = self._error
        return None if error is None else f"{error}; the rows were saved to {self._dead_letter}"

    @property
    def backlog(self) -> int:
        return self._submitted - self._done

    def flush(self, timeout: float | None = None) -> None:
        """Block until every row submitted so far is written; re-raise a write failure."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._flush_now = True
            self._cond.notify_all()
            while self._done < target and self._error is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WriteFailed(f"writer did not flush within {timeout}s")
                self._cond.wait(remaining if remaining is not None else 1.0)
            self._raise_error()

    async def aflush(self) -> None:
        """`flush` for coroutines: waits in a worker thread so the event loop keeps running."""
        await asyncio.to_thread(self.flush)

    def close(self) -> None:
        """Write everything still pending, stop the thread, re-raise any write failure."""
        with self._cond:
            self._closing = True
            self._flush_now = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            self._raise_error()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise WriteFailed(
                f"writing to {self.db.path} failed: {error}; the rows were saved to {self._dead_letter}"
            ) from error

    # -- the writer thread -------------------------------------------------------------------------
    @property
    def _dead_letter(self) -> Path:
        return self.db.path.with_name(self.db.path.name + ".failed-writes.jsonl")

    def _due(self) -> bool:
        if not self._pending_count:
            return False
        if self._flush_now or self._closing or self._pending_count >= self.max_batch:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self.flush_interval

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closing and not self._pending_count:
                        return
                    if self._flush_now and not self._pending_count:
                        self._flush_now = False
                        self._cond.notify_all()
                    wait = self.flush_interval
                    if self._oldest is not None:
                        wait = max(0.0, self.flush_interval - (time.monotonic() - self._oldest))
                    self._cond.wait(wait)
                batch, self._pending = self._pending, defaultdict(list)
                count, self._pending_count = self._pending_count, 0
                self._oldest = None
            try:
                self._write_patiently(batch)
            except BaseException as exc:  # recorded and re-raised to the caller of flush/close
                self._save_dead_letter(batch, exc)
                with self._cond:
                    self._error = exc
            with self._cond:
                self._done += count
                if self._done >= self._submitted:
                    self._flush_now = False
                self._cond.notify_all()

    def _write_patiently(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        """A file held by a reader (a long `swarm query` or `swarm export`) is waited out for up to
        `busy_patience` seconds, one lock timeout after another: a busy file is not a failed write."""
        started = time.monotonic()
        while True:
            try:
                self._write(batch)
                return
            except DatabaseBusy:
                if time.monotonic() - started >= self.busy_patience:  # closing too: the last rows matter
                    raise
                self.busy_waits += 1

    def _write(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        with self.db.write() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, rows in batch.items():
                    # every key of every row: from_pylist would take the first row's keys as the schema
                    # and silently drop a column only later rows have
                    columns = list(dict.fromkeys(key for row in rows for key in row))
                    arrow = pa.table({c: pa.array([row.get(c) for row in rows]) for c in columns})
                    con.register("_swarm_batch", arrow)
                    verb = {"ignore": "INSERT OR IGNORE", "replace": "INSERT OR REPLACE"}.get(
                        self.on_conflict.get(table, ""), "INSERT"
                    )
                    con.execute(f'{verb} INTO "{table}" BY NAME SELECT * FROM _swarm_batch')
                    con.unregister("_swarm_batch")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        self.batches_written += 1
        self.rows_written += sum(len(rows) for rows in batch.values())

    def _save_dead_letter(self, batch: dict[str, list[dict[str, Any]]], exc: BaseException) -> None:
        stamp = dt.datetime.now(dt.UTC).isoformat()
        with self._dead_letter.open("a", encoding="utf-8") as fh:
            for table, rows in batch.items():
                for row in rows:
                    record = {"table": table, "row": row, "error": str(exc), "at": stamp}
                    fh.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
