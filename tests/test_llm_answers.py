"""The LLM client against a broken or hostile OpenAI-compatible endpoint (the real openai client on the
local test server): every bad answer ends as an LLMOutputError or LLMUnavailable with a reason, and an
`llm_calls` row that says so; bad bodies are retried, oversized ones refused unread, slow ones cut off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from agents.llm import LLMClient, LLMOutputError, LLMSettings, LLMUnavailable
from agents.llm.errors import LLMSettingError
from storage import BatchWriter, Database
from tests.support.cli import RUN, Cli
from tests.support.llm import MESSAGES, settings, with_client
from tests.support.llm_server import LLMServer
from tests.support.runs import assert_counts_match_tables, rows


class Topics(BaseModel):
    topics: list[str] = Field(min_length=3, max_length=5)


def ask(**kwargs: Any) -> Any:
    return lambda client: client.chat(MESSAGES, purpose="t", **kwargs)


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("not_json", "with a body that is not JSON (text/html): '<html>"),
        ("error_200", "with an error instead of a completion: The model is overloaded"),
        ("no_choices", "with no choices"),
    ],
)
async def test_a_200_that_is_no_completion_is_a_bad_response_retried_like_a_5xx(
    llm_server: LLMServer, isolated_db: Path, fault: str, said: str
) -> None:
    llm_server.faults.extend([fault] * 3)
    error, rows_ = await with_client(isolated_db, settings(llm_server, max_retries=2), ask())
    assert isinstance(error, LLMOutputError) and error.reason == "bad_response", error
    assert len(llm_server.requests) == 3, "retried within max_retries"
    assert [(r["status"], r["attempts"]) for r in rows_] == [("bad_response", 3)]
    assert "gave up after 3 attempts" in rows_[0]["error"] and said in rows_[0]["error"]
    # once the endpoint answers properly again, so does the call
    llm_server.faults.append(fault)
    reply, rows_ = await with_client(isolated_db, settings(llm_server, max_retries=2), ask(schema=Topics))
    assert isinstance(reply.value, Topics)
    assert (rows_[-1]["status"], rows_[-1]["attempts"]) == ("ok", 2)


async def test_a_run_of_bad_responses_trips_the_breaker(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.extend(["not_json"] * 20)
    cfg = settings(llm_server, breaker_failures=3, breaker_seconds=0.0)

    async def twice(client: LLMClient) -> Any:
        with pytest.raises(LLMUnavailable, match="is not answering") as first:
            await client.chat(MESSAGES, purpose="t")
        sent = len(llm_server.requests)
        with pytest.raises(LLMUnavailable):  # the run stops: no more requests to a broken endpoint
            await client.chat([{"role": "user", "content": "again"}], purpose="t")
        return first.value, sent

    (error, sent), rows_ = await with_client(isolated_db, cfg, twice)
    assert error.reason == "bad_response" and "not JSON" in str(error)
    assert sent == 3 and len(llm_server.requests) == 3
    assert [(r["status"], r["attempts"]) for r in rows_] == [("bad_response", 3)]


async def test_a_tool_call_instead_of_text_is_an_empty_answer_asked_for_once_more(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    llm_server.faults.extend(["tool_call", "tool_call"])
    error, rows_ = await with_client(isolated_db, settings(llm_server), ask())
    assert isinstance(error, LLMOutputError) and error.reason == "empty_answer", error
    assert "called a tool (search_web)" in str(error)
    assert len(llm_server.requests) == 2, "asked once more, not max_retries times"
    assert [(r["status"], r["attempts"]) for r in rows_] == [("empty_answer", 2)]
    llm_server.faults.append("tool_call")
    reply, rows_ = await with_client(isolated_db, settings(llm_server), ask())
    assert reply.text.startswith("Echo:") and (rows_[-1]["status"], rows_[-1]["attempts"]) == ("ok", 2)
    con = rows(isolated_db, "SELECT content FROM llm_cache")
    assert all(content for (content,) in con), "no empty answer is stored"


async def test_empty_answers_are_the_models_doing_and_do_not_trip_the_breaker(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    llm_server.faults.extend(["tool_call"] * 6)

    async def three(client: LLMClient) -> Any:
        for i in range(3):
            with pytest.raises(LLMOutputError):
                await client.chat([{"role": "user", "content": f"q{i}"}], purpose="t")
        return await client.chat(MESSAGES, purpose="t")

    reply, rows_ = await with_client(isolated_db, settings(llm_server, breaker_failures=2, breaker_seconds=0.0), three)
    assert not isinstance(reply, Exception), reply
    assert [r["status"] for r in rows_] == ["empty_answer"] * 3 + ["ok"]


@pytest.mark.timeout(60)
async def test_a_body_that_drips_is_cut_off_at_the_deadline(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.extend(["drip", "drip"])
    llm_server.drip = 1.0  # a byte a second: never idle for the 3 s read timeout
    started = time.monotonic()
    error, rows_ = await with_client(isolated_db, settings(llm_server, timeout=3.0, deadline=1.0, max_retries=1), ask())
    elapsed = time.monotonic() - started
    assert isinstance(error, LLMOutputError) and error.reason == "timeout", error
    assert [(r["status"], r["attempts"]) for r in rows_] == [("timeout", 2)]
    assert "1 s deadline" in rows_[0]["error"]
    assert len(llm_server.requests) == 2 and elapsed < 5


@pytest.mark.parametrize("fault", ["huge", "huge_chunked", "huge_error"])
async def test_a_huge_body_is_refused_without_reading_it(llm_server: LLMServer, isolated_db: Path, fault: str) -> None:
    llm_server.faults.extend([fault] * 5)
    cap = 256 * 1024
    started = time.monotonic()
    error, rows_ = await with_client(isolated_db, settings(llm_server, max_response_bytes=cap), ask())
    assert isinstance(error, LLMOutputError) and error.reason == "too_large", error
    assert "262,144-byte cap" in str(error)
    assert len(llm_server.requests) == 1, "not asked again: the endpoint would send as much again"
    assert [(r["status"], r["attempts"]) for r in rows_] == [("too_large", 1)]
    assert len(rows_[0]["error"]) < 1000
    await asyncio.sleep(0.2)  # the server's writes fail once the client hung up
    assert llm_server.body_bytes_sent < llm_server.huge_bytes / 4, "most of the 100 MB was never sent"
    assert time.monotonic() - started < 10


async def test_a_compressed_body_is_capped_by_what_it_inflates_to(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.append("gzip_bomb")
    llm_server.huge_bytes = 16 * 1024 * 1024
    error, rows_ = await with_client(isolated_db, settings(llm_server, max_response_bytes=1024 * 1024), ask())
    assert isinstance(error, LLMOutputError) and error.reason == "too_large", error
    assert "once decompressed" in str(error) and rows_[0]["status"] == "too_large"


@pytest.mark.parametrize(("fault", "said"), [("overlong_usage", "6,400 tokens long"), ("overlong_text", "characters")])
async def test_an_answer_far_beyond_max_tokens_is_refused(
    llm_server: LLMServer, isolated_db: Path, fault: str, said: str
) -> None:
    llm_server.faults.append(fault)
    error, rows_ = await with_client(isolated_db, settings(llm_server), ask(max_tokens=128))
    assert isinstance(error, LLMOutputError) and error.reason == "too_long", error
    assert said in str(error) and "ignores max_tokens" in str(error)
    assert len(llm_server.requests) == 1
    row = rows_[0]
    assert (row["status"], row["attempts"]) == ("too_long", 1)
    assert row["completion_tokens"] == (6400 if fault == "overlong_usage" else 0), "the tokens spent are kept"
    assert rows(isolated_db, "SELECT count(*) FROM llm_cache") == [(0,)]


async def test_refused_answers_count_towards_the_breaker(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.extend(["overlong_usage", "huge"])

    async def two(client: LLMClient) -> Any:
        with pytest.raises(LLMOutputError):
            await client.chat(MESSAGES, purpose="t")
        await client.chat([{"role": "user", "content": "again"}], purpose="t")

    error, _ = await with_client(
        isolated_db, settings(llm_server, breaker_failures=2, breaker_seconds=0.0, max_response_bytes=65536), two
    )
    assert isinstance(error, LLMUnavailable) and error.reason == "too_large" and "is not answering" in str(error)


async def test_the_deadline_and_the_cap_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_LLM_DEADLINE_S", "45")
    monkeypatch.setenv("SWARM_LLM_MAX_RESPONSE_MB", "0.5")
    cfg = LLMSettings.from_env()
    assert (cfg.deadline, cfg.max_response_bytes) == (45.0, 512 * 1024)
    monkeypatch.setenv("SWARM_LLM_DEADLINE_S", "soon")
    with pytest.raises(LLMSettingError, match="SWARM_LLM_DEADLINE_S must be a number of seconds, not 'soon'"):
        LLMSettings.from_env()
    monkeypatch.setenv("SWARM_LLM_DEADLINE_S", "0")
    with pytest.raises(LLMSettingError, match="SWARM_LLM_DEADLINE_S must be more than zero"):
        LLMSettings.from_env()


def test_a_unit_that_gets_such_answers_fails_with_their_reason(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer
) -> None:
    # persona 1's first call (its interests) is answered with tool calls twice, persona 2's far over max_tokens
    llm_server.faults.extend(["tool_call", "tool_call", "overlong_usage"])
    code, out, err = cli(*RUN, "-n", "3", "--turns", "1", "--concurrency", "1", "--llm-concurrency", "1", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["status"] == "finished" and record["conversations"] == 1
    assert record["counts"]["units_failed_by_reason"] == {"empty_answer": 1, "too_long": 1}
    failed = rows(isolated_db, "SELECT reason, error FROM run_units WHERE status = 'failed' ORDER BY started_at")
    assert [reason for reason, _ in failed] == ["empty_answer", "too_long"]
    assert "search_web" in failed[0][1] and "ignores max_tokens" in failed[1][1]


@pytest.mark.parametrize(
    ("fault", "reason", "said"), [("not_json", "bad_response", "not a model list"), ("huge", "too_large", "cap")]
)
async def test_a_models_list_that_is_no_list_stops_before_the_run_with_a_clear_message(
    llm_server: LLMServer, isolated_db: Path, fault: str, reason: str, said: str
) -> None:
    llm_server.models_fault = fault
    db = Database(isolated_db)
    with BatchWriter(db) as writer:
        client = LLMClient(settings(llm_server, max_response_bytes=65536), db, writer)
        try:
            with pytest.raises(LLMUnavailable) as stopped:  # what `swarm run` shows, before it starts
                await client.check()
        finally:
            await client.aclose()
    assert stopped.value.reason == reason and said in str(stopped.value)


async def test_an_error_message_of_a_megabyte_is_kept_short(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.faults.append("400_verbose")
    error, rows_ = await with_client(isolated_db, settings(llm_server), ask())
    assert isinstance(error, LLMOutputError) and error.reason == "bad_request", error
    assert str(error).startswith("the endpoint refused the request: Error code: 400") and len(str(error)) <= 2001
    assert rows_[0]["status"] == "bad_request" and len(rows_[0]["error"]) <= 2001
