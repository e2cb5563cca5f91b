"""Content-addressed response cache: the same model, messages, parameters and schema are never sent
twice. Entries live in the `llm_cache` table (written through the run's BatchWriter) and, for this
process, in memory, so a repeat right after the first call hits before the batch is flushed."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from storage import BatchWriter, Database, DatabaseMissing
from storage.errors import DatabaseBusy

log = logging.getLogger(__name__)
RECENT_MAX = 4096  # answers kept in memory; far more than a writer's flush interval produces


@dataclass(frozen=True)
class CachedAnswer:
    content: str
    prompt_tokens: int
    completion_tokens: int


def cache_key(
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    schema: dict[str, Any] | None,
    scope: str | None = None,
) -> str:
    """`scope` keeps answers apart that must not be shared though their prompts match (see LLMClient.chat)."""
    key: dict[str, Any] = {"model": model, "messages": messages, "params": params, "schema": schema}
    if scope is not None:
        key["scope"] = scope
    payload = json.dumps(
        key,
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LLMCache:
    """Lookups never block the event loop: the keys are read once (in a thread), so a miss costs a set
    lookup, and only a hit reads its answer from the database (in a thread too)."""

    def __init__(self, db: Database, writer: BatchWriter, *, run_id: str | None = None):
        self.db, self.writer, self.run_id = db, writer, run_id
        # answers of this process, most recent last: found here before the writer has flushed them;
        # bounded, since once written they are read back from the table
        self._recent: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._keys: set[str] | None = None
        self._loading = asyncio.Lock()

    async def get(self, key: str) -> CachedAnswer | None:
        """The cached answer, or None. A database another process holds for longer than the lock wait
        (a long `swarm export`) makes this a miss, not a failed call: the answer is asked for again."""
        if key in self._recent:
            return self._recent[key]
        try:
            if self._keys is None:
                async with self._loading:
                    if self._keys is None:
                        self._keys = await asyncio.to_thread(self._load_keys)
            if key not in self._keys:
                return None
            return await asyncio.to_thread(self._read, key)
        except DatabaseBusy as exc:
            log.warning("LLM cache not read (%s): asking the model", exc)
            return None

    def _load_keys(self) -> set[str]:
        try:
            with self.db.read() as con:
                # answers scoped to other runs could never match this run's keys: not loaded
                rows = con.execute(
                    "SELECT cache_key FROM llm_cache WHERE run_id IS NULL OR run_id = ?", [self.run_id]
                ).fetchall()
                return {row[0] for row in rows}
        except DatabaseMissing:
            return set()

    def _read(self, key: str) -> CachedAnswer | None:
        with self.db.read() as con:
            row = con.execute(
                "SELECT content, prompt_tokens, completion_tokens FROM llm_cache WHERE cache_key = ? LIMIT 1", [key]
            ).fetchall()
        return CachedAnswer(row[0][0], int(row[0][1] or 0), int(row[0][2] or 0)) if row else None

    def put(self, key: str, model: str, answer: CachedAnswer, *, scoped: bool = False) -> None:
        """Store an answer; `scoped`: its key holds this run's unit, so only this run can ever hit it."""
        self._recent[key] = answer
        if len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)
        if self._keys is not None:
            self._keys.add(key)
        self.writer.submit(
            "llm_cache",
            {
                "cache_key": key,
                "run_id": self.run_id if scoped else None,
                "model": model,
                "content": answer.content,
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "created_at": dt.datetime.now(dt.UTC),
            },
        )
