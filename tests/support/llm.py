"""The LLM client pointed at the test server, and the `llm_calls` rows a piece of work left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from agents.llm import LLMClient, LLMSettings
from storage import BatchWriter, Database
from tests.support.llm_server import LLMServer


def settings(server: LLMServer, **overrides: Any) -> LLMSettings:
    base: dict[str, Any] = dict(
        base_url=server.base_url, api_key="test", model="test-model", backoff_base=0.01, timeout=2.0
    )
    base.update(overrides)
    return LLMSettings(**base)


async def with_client(db_path: Path, cfg: LLMSettings, work: Any) -> tuple[Any, list[dict[str, Any]]]:
    db = Database(db_path)
    with BatchWriter(db, flush_interval=0.05) as writer:
        client = LLMClient(cfg, db, writer, run_id="run_test")
        try:
            result = await work(client)
        except Exception as exc:  # returned, so the test can look at the rows the failure left
            result = exc
        finally:
            await client.aclose()
    con = duckdb.connect(str(db_path), read_only=True)
    cursor = con.execute("SELECT * FROM llm_calls ORDER BY created_at")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    con.close()
    return result, rows


MESSAGES = [{"role": "user", "content": "What would a beekeeper in Umbria read about?"}]
