"""The LLM layer against a local OpenAI-compatible server, with the real openai client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import BaseModel, Field

from agents.llm import LLMClient, LLMOutputError, LLMSettings, LLMUnavailable
from storage import BatchWriter, Database
from tests.support.cli import hold_database
from tests.support.llm import MESSAGES, settings, with_client
from tests.support.llm_server import LLMServer


class Interests(BaseModel):
    topics: list[str] = Field(min_length=3, max_length=5)
    queries: list[str] = Field(min_length=3, max_length=5)
    summary: str


async def test_a_plain_call_is_logged_and_the_same_call_again_is_answered_from_the_cache(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    async def twice(client: LLMClient) -> Any:
        first = await client.chat(MESSAGES, purpose="test")
        second = await client.chat(MESSAGES, purpose="test")
        return first, second

    (first, second), rows = await with_client(isolated_db, settings(llm_server), twice)
    assert first.text.startswith("Echo: What would a beekeeper") and not first.cached
    assert second.cached and second.text == first.text
    assert len(llm_server.requests) == 1, "the second call must make no request"
    assert [(r["status"], r["cached"], r["purpose"], r["run_id"]) for r in rows] == [
        ("ok", False, "test", "run_test"),
        ("ok", True, "test", "run_test"),
    ]
    assert rows[0]["prompt_tokens"] > 0 and rows[0]["completion_tokens"] > 0 and rows[1]["prompt_tokens"] == 0
    # a new client (a later run) still makes no request: the cache is in the database
    again, _ = await with_client(isolated_db, settings(llm_server), lambda c: c.chat(MESSAGES, purpose="test"))
    assert again.cached and len(llm_server.requests) == 1


async def test_structured_output_is_validated(llm_server: LLMServer, isolated_db: Path) -> None:
    reply, rows = await with_client(
        isolated_db, settings(llm_server), lambda c: c.chat(MESSAGES, purpose="interests", schema=Interests)
    )
    assert isinstance(reply.value, Interests) and len(reply.value.topics) == 3
    body = llm_server.requests[0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert rows[0]["mode"] == "json_schema"


async def test_an_endpoint_without_json_schema_falls_back_to_json_object_and_remembers(isolated_db: Path) -> None:
    with LLMServer(json_schema=False) as server:

        async def two(client: LLMClient) -> Any:
            await client.chat(MESSAGES, purpose="a", schema=Interests)
            return await client.chat([{"role": "user", "content": "another"}], purpose="b", schema=Interests)

        reply, rows = await with_client(isolated_db, settings(server), two)
        kinds = [r["body"].get("response_format", {}).get("type") for r in server.requests]
    assert isinstance(reply.value, Interests)
    assert kinds == ["json_schema", "json_object", "json_object"], "the mode that worked is remembered"
    assert [r["mode"] for r in rows] == ["json_object", "json_object"]


@pytest.mark.parametrize("fault", ["invalid_json", "schema_violation", "length"])
async def test_a_bad_answer_is_retried_once_with_the_error_shown(
    llm_server: LLMServer, isolated_db: Path, fault: str
) -> None:
    llm_server.faults.append(fault)
    reply, rows = await with_client(
        isolated_db, settings(llm_server), lambda c: c.chat(MESSAGES, purpose="interests", schema=Interests)
    )
    assert isinstance(reply.value, Interests)
    assert len(llm_server.requests) == 2
    repair = llm_server.requests[1]["body"]["messages"][-1]["content"]
    assert "could not be used" in repair
    assert rows[0]["status"] == "ok" and rows[0]["attempts"] == 2
    assert rows[0]["answer"] is None, "a usable answer is in the cache and the conversation, not kept twice"


async def test_twice_invalid_is_a_recorded_failure_not_a_success(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.extend(["schema_violation", "schema_violation"])
    error, rows = await with_client(
        isolated_db, settings(llm_server), lambda c: c.chat(MESSAGES, purpose="interests", schema=Interests)
    )
    assert isinstance(error, LLMOutputError) and error.reason == "schema_invalid"
    assert rows[0]["status"] == "schema_invalid" and "topics" in rows[0]["error"]
    # what the model said is kept to read: the second answer, the one the repair round could not fix
    assert rows[0]["answer"] == '{"unexpected": true}' and error.answer == rows[0]["answer"]
    con = duckdb.connect(str(isolated_db), read_only=True)
    assert con.execute("SELECT count(*) FROM llm_cache").fetchone() == (0,), "a failure is not cached"
    con.close()


async def test_429_retry_after_and_5xx_and_timeouts_are_retried(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.extend(["429", "500", "timeout"])
    llm_server.hang = 3.0
    started = time.monotonic()
    reply, rows = await with_client(
        isolated_db, settings(llm_server, timeout=1.0), lambda c: c.chat(MESSAGES, purpose="test")
    )
    assert reply.text.startswith("Echo:")
    assert rows[0]["attempts"] == 4 and rows[0]["status"] == "ok"
    times = [r["time"] for r in llm_server.requests]
    assert times[1] - times[0] >= 0.95, "Retry-After: 1 was not honoured"
    assert time.monotonic() - started < 15


async def test_a_429_halves_the_concurrency_and_it_grows_back(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.latency = 0.05
    llm_server.faults.append("429")

    async def many(client: LLMClient) -> Any:
        first = asyncio.create_task(client.chat([{"role": "user", "content": "first"}], purpose="t"))
        await asyncio.sleep(0.2)
        after_429 = client.limiter.limit
        await first
        await asyncio.gather(*(client.chat([{"role": "user", "content": f"q{i}"}], purpose="t") for i in range(40)))
        return after_429, client.limiter.limit

    (after_429, final), _ = await with_client(isolated_db, settings(llm_server, max_concurrency=8), many)
    assert after_429 == 4 and final == 8


async def test_a_bad_key_or_a_dead_endpoint_stops_with_one_clear_message(isolated_db: Path) -> None:
    with LLMServer() as server:
        server.faults.append("401")
        error, rows = await with_client(isolated_db, settings(server), lambda c: c.chat(MESSAGES, purpose="t"))
    assert isinstance(error, LLMUnavailable) and "check OPENAI_API_KEY" in str(error)
    assert rows[-1]["status"] == "auth"
    dead = LLMSettings(
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
        model="m",
        backoff_base=0.01,
        timeout=1.0,
        breaker_failures=3,
        breaker_seconds=0.0,
    )

    async def keep_calling(client: LLMClient) -> Any:
        with pytest.raises(LLMUnavailable, match="is not answering"):
            await client.chat(MESSAGES, purpose="t")
        started = time.monotonic()
        with pytest.raises(LLMUnavailable):  # the breaker is open: no more waiting on a dead endpoint
            await client.chat([{"role": "user", "content": "again"}], purpose="t")
        return time.monotonic() - started

    elapsed, _ = await with_client(isolated_db, dead, keep_calling)
    assert elapsed < 0.1


async def test_a_burst_of_server_errors_across_many_agents_does_not_trip_the_breaker(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    llm_server.faults.extend(["500"] * 12)  # twice the breaker's count, all at once

    async def many(client: LLMClient) -> Any:
        return await asyncio.gather(
            *(client.chat([{"role": "user", "content": f"agent {i}"}], purpose="t") for i in range(12))
        )

    replies, rows = await with_client(isolated_db, settings(llm_server, breaker_failures=6), many)
    assert not isinstance(replies, Exception), replies
    assert all(r.text.startswith("Echo: agent") for r in replies)
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 12


async def test_a_call_cancelled_by_a_stopping_run_still_leaves_its_row(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    llm_server.latency = 5.0

    async def cancelled(client: LLMClient) -> Any:
        task = asyncio.create_task(client.chat(MESSAGES, purpose="assistant_turn"))
        await asyncio.sleep(0.3)
        task.cancel()
        return await asyncio.gather(task, return_exceptions=True)

    (outcome,), rows = await with_client(isolated_db, settings(llm_server, timeout=10.0), cancelled)
    assert isinstance(outcome, asyncio.CancelledError)
    assert [(r["purpose"], r["status"], r["attempts"]) for r in rows] == [("assistant_turn", "cancelled", 1)]


async def test_rate_limits_do_not_count_towards_the_breaker(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.extend(["429", "429", "500"])  # "later", "later", then one real failure
    reply, rows = await with_client(
        isolated_db,
        settings(llm_server, breaker_failures=2, breaker_seconds=0.0),
        lambda c: c.chat(MESSAGES, purpose="t"),
    )
    assert not isinstance(reply, Exception), reply
    assert rows[-1]["status"] == "ok" and rows[-1]["attempts"] == 4


async def test_a_database_another_process_writes_to_makes_the_cache_a_miss_not_a_failure(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    await with_client(isolated_db, settings(llm_server), lambda c: c.chat(MESSAGES, purpose="t"))  # cached now
    holder = hold_database(isolated_db, 2, read_only=False)  # another process writing (a big import, say)
    db = Database(isolated_db, lock_timeout=0.3)
    with BatchWriter(db, flush_interval=0.05) as writer:
        client = LLMClient(settings(llm_server), db, writer, run_id="run_busy")
        try:
            reply = await client.chat(MESSAGES, purpose="t")
        finally:
            await client.aclose()
    holder.wait(timeout=10)
    assert not reply.cached and reply.text.startswith("Echo:") and len(llm_server.requests) == 2


async def test_a_units_answers_are_its_runs_alone(llm_server: LLMServer, isolated_db: Path) -> None:
    async def one(run: str, scope: str | None) -> Any:
        db = Database(isolated_db)
        with BatchWriter(db, flush_interval=0.05) as writer:
            client = LLMClient(settings(llm_server), db, writer, run_id=run)
            try:
                return await client.chat(MESSAGES, purpose="t", scope=scope)
            finally:
                await client.aclose()

    assert not (await one("run_a", "p_1/0")).cached
    assert (await one("run_a", "p_1/0")).cached, "a resumed unit gets its own answer back"
    assert not (await one("run_b", "p_1/0")).cached, "another run asks afresh"
    assert not (await one("run_b", None)).cached and (await one("run_c", None)).cached, "unscoped: shared"
    con = duckdb.connect(str(isolated_db), read_only=True)
    owners = con.execute("SELECT run_id FROM llm_cache ORDER BY created_at").fetchall()
    con.close()
    assert owners == [("run_a",), ("run_b",), (None,)]


async def test_reasoning_blocks_are_stripped(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.append("think")
    reply, _ = await with_client(isolated_db, settings(llm_server), lambda c: c.chat(MESSAGES, purpose="t"))
    assert "<think>" not in reply.text and reply.text.startswith("Echo:")


async def test_switching_the_json_mode_is_not_counted_as_a_retry(isolated_db: Path) -> None:
    with LLMServer(json_schema=False) as server:
        reply, rows = await with_client(
            isolated_db, settings(server, max_retries=0), lambda c: c.chat(MESSAGES, purpose="t", schema=Interests)
        )
    assert isinstance(reply.value, Interests) and rows[0]["mode"] == "json_object"
