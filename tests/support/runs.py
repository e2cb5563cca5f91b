"""Reading what a run wrote, and checking its counts against the tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storage import Database


def rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Database(db).read() as con:
        return con.execute(sql, params or []).fetchall()


def run_record(db: Path, run_id: str) -> dict[str, Any]:
    with Database(db).read() as con:
        cursor = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        names = [d[0] for d in cursor.description or []]
        row = cursor.fetchone()
    assert row is not None, f"no runs row for {run_id}"
    record = dict(zip(names, row, strict=True))
    record["counts"] = json.loads(record["counts"] or "{}")
    return record


def assert_counts_match_tables(db: Path, run_id: str) -> dict[str, Any]:
    record = run_record(db, run_id)
    counts = record["counts"]
    assert counts["conversations"] == rows(db, "SELECT count(*) FROM conversations WHERE run_id = ?", [run_id])[0][0]
    assert counts["conversations"] == record["conversations"]
    pages = dict(rows(db, "SELECT coalesce(error, 'ok'), count(*) FROM pages WHERE run_id = ? GROUP BY 1", [run_id]))
    assert counts["pages_ok"] == pages.pop("ok", 0) and counts["pages_failed_by_reason"] == pages
    calls = rows(
        db, "SELECT count(*), sum(prompt_tokens), sum(completion_tokens) FROM llm_calls WHERE run_id = ?", [run_id]
    )[0]
    assert (counts["llm_calls"], counts["prompt_tokens"], counts["completion_tokens"]) == calls
    failed = dict(
        rows(
            db,
            "SELECT reason, count(*) FROM run_units u WHERE run_id = ? AND status = 'failed' AND NOT EXISTS "
            "(SELECT 1 FROM conversations c WHERE c.run_id = u.run_id AND c.persona_id = u.persona_id "
            "AND c.cycle = u.cycle) GROUP BY 1",
            [run_id],
        )
    )
    assert counts["units_failed_by_reason"] == failed
    return record
