"""`swarm run` and `swarm runs` end to end: the real crawler on the test website, the real openai client
on the test LLM server, real processes for kill -9 and Ctrl-C."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from agents.runs import RunConfig, RunError, RunStore, status_of
from persona_hub import sample
from storage import Database
from tests.support.cli import RUN, Cli
from tests.support.llm_server import LLMServer
from tests.support.runs import assert_counts_match_tables, rows, run_record


def test_a_run_writes_grounded_conversations_and_its_counts_match_the_tables(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, website: Any
) -> None:
    code, out, err = cli(*RUN, "-n", "4", "--cycles", "2", "--turns", "2", "--concurrency", "3", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    assert run_id.startswith("run_") and "[finished]" in out
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["status"] == "finished" and record["personas"] == 4 and record["conversations"] == 8
    assert record["sessions"] == 1 and record["finished_at"] is not None and record["elapsed_s"] > 0
    config = json.loads(record["config"])
    assert config["turns"] == 2 and config["cycles"] == 2 and config["model"] == "test-model"
    assert "test-key" not in record["config"], "the API key is never stored"
    # the selection is the hub's reproducible sample, and each persona's second cycle follows its first
    expected = [r["persona_id"] for r in sample(Database(isolated_db), 4, seed=0).rows]
    assert [p for (p,) in rows(isolated_db, "SELECT persona_id FROM run_personas ORDER BY position")] == expected
    trail = rows(
        isolated_db,
        "SELECT a.persona_id, json_extract_string(a.metadata, '$.next_question'), b.queries->>'$[0]' "
        "FROM conversations a JOIN conversations b ON a.persona_id = b.persona_id AND b.cycle = a.cycle + 1",
    )
    assert len(trail) == 4 and all(question == query for _, question, query in trail)
    unresolved = rows(
        isolated_db,
        "SELECT count(*) FROM (SELECT unnest(json_extract_string(sources, '$[*].page_id')) AS page_id "
        "FROM conversations) s WHERE page_id NOT IN (SELECT page_id FROM pages WHERE run_id = ? AND error IS NULL)",
        [run_id],
    )
    assert unresolved == [(0,)]
    # every agent shared one fetcher: a page found by several personas was fetched once
    fetched = [p for p in website.paths() if p.startswith("/articles/")]
    assert fetched and len(fetched) == len(set(fetched))
    code, out, _ = cli("runs", "list")
    assert code == 0 and run_id[:20] in out and "finished" in out
    code, out, _ = cli("runs", "show", run_id, "--json")
    assert code == 0 and json.loads(out)["counts"]["conversations"] == 8


def test_faults_during_a_run_are_rows_with_reasons_and_the_run_finishes(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, website: Any, llm_server: LLMServer
) -> None:
    website.fixed["/articles/1.html"] = (404, "text/html", b"<h1>gone</h1>")
    website.fixed["/articles/2.html"] = (200, "application/pdf", b"%PDF-1.4 binary")
    # the first call (persona 1's interests) gets bad JSON twice: that unit fails after its one retry;
    # then a 500 and a 429 that the retries absorb
    llm_server.faults.extend(["invalid_json", "invalid_json", "500", "429"])
    code, out, err = cli(*RUN, "-n", "3", "--turns", "1", "--concurrency", "1", "--llm-concurrency", "1", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["status"] == "finished" and record["conversations"] == 2
    assert record["counts"]["units_failed_by_reason"] == {"invalid_json": 1}
    assert {"http_404", "not_html"} <= set(record["counts"]["pages_failed_by_reason"])
    failed_call = rows(isolated_db, "SELECT purpose, status, attempts FROM llm_calls WHERE status <> 'ok'")
    assert failed_call == [("interests", "invalid_json", 2)]
    assert rows(isolated_db, "SELECT max(attempts) FROM llm_calls WHERE status = 'ok'")[0][0] >= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "age > 500"], "no persona matches --where"),
        (["--where", "agee > 5"], "bad --where"),
        (["--base-url", "http://127.0.0.1:9/v1"], "cannot reach the LLM endpoint"),
    ],
)
def test_bad_filters_and_unreachable_endpoints_stop_before_anything_is_written(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, args: list[str], message: str
) -> None:
    code, _, err = cli(*RUN, *args)
    assert code == 1 and message in err and "Traceback" not in err
    assert rows(isolated_db, "SELECT count(*) FROM runs") == [(0,)]
    assert rows(isolated_db, "SELECT count(*) FROM conversations") == [(0,)]


def test_a_wrong_key_is_one_clear_message(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LLMServer(api_key="the-right-key") as guarded:
        monkeypatch.setenv("OPENAI_BASE_URL", guarded.base_url)
        code, _, err = cli(*RUN)
    assert code == 1 and "refused the API key" in err and "OPENAI_API_KEY" in err
    assert rows(isolated_db, "SELECT count(*) FROM runs") == [(0,)]


def test_a_run_needs_somewhere_to_read(cli: Cli, swarm_env: dict[str, str]) -> None:
    code, _, err = cli("run", "-n", "2")
    assert code == 1 and "--search BACKEND" in err and "--urls FILE" in err


@pytest.mark.slow
def test_an_endpoint_that_dies_mid_run_fails_the_run_cleanly(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_LLM_BREAKER_S", "1")  # down after 6 failures over a second, not the default 30
    llm_server.faults.extend(["500"] * 50)  # /models still answers, so the run starts; every completion fails
    code, _, err = cli(*RUN, "-n", "2", "--concurrency", "1", "--quiet")
    assert code == 1 and "failed" in err and "--resume" in err
    (run_id, status, error), *_ = rows(isolated_db, "SELECT run_id, status, error FROM runs")
    assert status == "failed" and "not answering" in error
    assert_counts_match_tables(isolated_db, run_id)


def test_a_failed_unit_holds_its_personas_later_cycles_and_resume_retries_it(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer
) -> None:
    # persona 1's first call (its interests) is bad JSON twice: its cycle 0 fails, and cycle 1, which
    # would follow cycle 0's next question, cannot run
    llm_server.faults.extend(["invalid_json", "invalid_json"])
    code, out, err = cli(*RUN, "-n", "2", "--cycles", "2", "--turns", "1", "--concurrency", "1", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["status"] == "finished" and record["conversations"] == 2
    assert record["counts"]["units_failed_by_reason"] == {"invalid_json": 1, "previous_cycle_failed": 1}
    code, out, err = cli("run", "--resume", run_id, "--json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]  # --json: nothing but JSON lines on stdout
    assert events[-1]["event"] == "finished" and events[-1]["run_id"] == run_id
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["conversations"] == 4 and record["sessions"] == 2 and record["counts"]["units_failed"] == 0
    # the retried cycle 0 is the persona's own, and its cycle 1 followed it: no cycle is a copy of another
    trail = rows(
        isolated_db,
        "SELECT a.cycle, a.queries, json_extract_string(a.metadata, '$.next_question'), b.queries->>'$[0]' "
        "FROM conversations a JOIN conversations b ON a.persona_id = b.persona_id AND b.cycle = a.cycle + 1",
    )
    assert len(trail) == 2 and all(question == followed for _, _, question, followed in trail)
    per_persona = rows(
        isolated_db, "SELECT count(DISTINCT CAST(queries AS VARCHAR)) FROM conversations GROUP BY persona_id"
    )
    assert per_persona == [(2,), (2,)]
    # the test server answers every persona alike, yet no unit was given another unit's cached answers
    assert rows(isolated_db, "SELECT count(*) FROM llm_calls WHERE cached") == [(0,)]


def test_a_retried_unit_gets_fresh_answers_not_a_replay_of_its_failure(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, website: Any
) -> None:
    website.fixed["/search"] = (200, "application/json", b'{"query": "", "results": []}')  # nothing found
    code, _, err = cli(*RUN, "-n", "1", "--turns", "1", "--quiet")
    assert code == 1 and "no_pages" in err
    (run_id,), *_ = rows(isolated_db, "SELECT run_id FROM runs")
    del website.fixed["/search"]
    code, _, err = cli("run", "--resume", run_id, "--quiet")
    assert code == 0, err
    # the first attempt's interests (and so its queries) were cached; the retry asked again
    interests = rows(isolated_db, "SELECT cached FROM llm_calls WHERE purpose = 'interests' ORDER BY created_at")
    assert interests == [(False,), (False,)]
    assert run_record(isolated_db, run_id)["conversations"] == 1


def test_a_live_process_on_this_machine_is_running_however_old_its_heartbeat() -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    here = {"status": "running", "updated_at": old, "hostname": socket.gethostname()}
    assert status_of({**here, "pid": os.getpid()}) == "running", "e.g. its writer waits out a long export"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert status_of({**here, "pid": dead.pid}) == "stale"
    assert status_of({**here, "hostname": "elsewhere", "pid": 1}) == "stale"
    assert status_of({**here, "hostname": "elsewhere", "pid": 1, "updated_at": dt.datetime.now(dt.UTC)}) == "running"


def test_a_run_that_makes_nothing_fails(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer
) -> None:
    llm_server.faults.extend(["invalid_json"] * 4)
    code, _, err = cli(*RUN, "-n", "2", "--turns", "1", "--concurrency", "1", "--llm-concurrency", "1", "--quiet")
    assert code == 1 and "no conversation was made" in err and "invalid_json" in err and "--resume" in err
    (run_id, status), *_ = rows(isolated_db, "SELECT run_id, status FROM runs")
    assert status == "failed"
    assert_counts_match_tables(isolated_db, run_id)


def test_render_always_without_a_browser_stops_before_the_run_exists(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SWARM_CHROMIUM", str(tmp_path / "no-such-browser"))
    code, _, err = cli(*RUN, "--render", "always")
    assert code == 1 and "no-such-browser" in err and "Traceback" not in err
    assert rows(isolated_db, "SELECT count(*) FROM runs") == [(0,)]


def test_a_process_that_took_a_run_over_is_not_overwritten_by_the_one_it_replaced(isolated_db: Path) -> None:
    store = RunStore(Database(isolated_db))
    store.create("run_x", RunConfig(), [])
    first = store.begin_session("run_x", 0)
    second = store.begin_session("run_x", 1)  # a --resume that took the first for dead
    with pytest.raises(RunError, match="resumed by another process"):
        store.begin_session("run_x", 1)  # a third, racing the second, backs off
    assert store.heartbeat("run_x", second, 1.0) and not store.heartbeat("run_x", first, 1.0)
    store.finish("run_x", first, "interrupted", 1.0, "old")
    assert run_record(isolated_db, "run_x")["status"] == "running"
    assert store.finish("run_x", second, "finished", 2.0)["status"] == "finished"


def test_seed_urls_are_read_once_into_a_library_every_agent_picks_from(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, website: Any, tmp_path: Path
) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# the site's index\n{website.url('/articles/1.html')}\n")
    args = ["run", "--urls", str(seeds), "--depth", "1", "--allow-private", "--host-rate", "0", "--render", "never"]
    code, out, err = cli(*args, "-n", "3", "--turns", "1", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["conversations"] == 3 and record["pages_ok"] >= 3
    assert website.paths().count("/articles/1.html") == 1, "the seed is crawled once for the whole run"


# -- real processes: kill -9, Ctrl-C ----------------------------------------------------------------------
def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "swarm"
    return subprocess.Popen(
        [str(exe), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        # a process group of its own, like a command started from a shell: a terminal's Ctrl-C is
        # os.killpg(SIGINT) to all of it, the run and every process it started
        start_new_session=True,
    )


def _wait_for(db: Path, sql: str, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                con = duckdb.connect(str(db), read_only=True)
                try:
                    if con.execute(sql).fetchone()[0] >= at_least:  # type: ignore[index]
                        return
                finally:
                    con.close()
            except duckdb.Error:
                pass  # the run holds the file for a moment, or has not created the table yet
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {sql} >= {at_least}")


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing_and_duplicates_nothing(
    swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer, cli: Cli
) -> None:
    llm_server.latency = 0.15
    args = [*RUN, "-n", "6", "--cycles", "2", "--turns", "2", "--concurrency", "2", "--json"]
    process = _start(args, swarm_env)
    _wait_for(isolated_db, "SELECT count(*) FROM conversations", 3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    before = rows(isolated_db, "SELECT conversation_id, created_at FROM conversations ORDER BY 1")
    (run_id, status), *_ = rows(isolated_db, "SELECT run_id, status FROM runs")
    assert status == "running" and 3 <= len(before) < 12
    code, out, _ = cli("runs", "list")
    assert "stale" in out, "a run whose process died is shown as stale, not running"

    code, out, err = cli("run", "--resume", run_id, "--quiet", "--turns", "3")
    assert code == 0, err
    assert "keeps its own config; ignoring --turns" in err
    after = rows(isolated_db, "SELECT conversation_id, created_at FROM conversations ORDER BY 1")
    assert set(before) <= set(after), "every conversation finished before the kill is still there, unchanged"
    assert len(after) == 12 == len({c for c, _ in after})
    assert rows(isolated_db, "SELECT count(DISTINCT (persona_id, cycle)) FROM conversations") == [(12,)]
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["status"] == "finished" and record["sessions"] == 2


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_says_how_to_resume_and_a_second_ctrl_c_stops_at_once(
    swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer, cli: Cli
) -> None:
    llm_server.latency = 0.3
    args = [*RUN, "-n", "8", "--turns", "2", "--concurrency", "2", "--grace", "60", "--json"]
    process = _start(args, swarm_env)
    _wait_for(isolated_db, "SELECT count(*) FROM conversations", 1)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it: to the run and its children
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGINT)  # the second: abandon what is in flight now
    stopped = time.monotonic()
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - stopped < 10, "the second Ctrl-C does not wait for the grace period"
    assert process.returncode == 130 and "--resume" in err, err
    events = [json.loads(line)["event"] for line in out.splitlines() if line.startswith("{")]
    assert events[0] == "started" and "stopping" in events and events[-1] == "finished"
    (run_id, status), *_ = rows(isolated_db, "SELECT run_id, status FROM runs")
    assert status == "interrupted"
    assert rows(isolated_db, "SELECT count(*) FROM run_units WHERE status = 'abandoned'")[0][0] >= 1
    assert_counts_match_tables(isolated_db, run_id)
    code, _, err = cli("run", "--resume", run_id, "--quiet")
    assert code == 0, err
    assert run_record(isolated_db, run_id)["conversations"] == 8


def test_a_finished_run_resumes_to_nothing(cli: Cli, swarm_env: dict[str, str], llm_server: LLMServer) -> None:
    code, out, _ = cli(*RUN, "-n", "1", "--turns", "1", "--quiet")
    run_id = out.strip().splitlines()[-1]
    sent = len(llm_server.requests)
    code, out, _ = cli("run", "--resume", run_id, "--quiet")
    assert code == 0 and "[finished]" in out and len(llm_server.requests) == sent
    code, _, err = cli("run", "--resume", "run_nope")
    assert code == 1 and "no run run_nope" in err


@pytest.mark.slow
def test_a_terminal_ctrl_c_lets_units_in_flight_finish_with_working_extraction(
    swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer, website: Any
) -> None:
    llm_server.latency = 0.2
    # pages come slowly (4/s), so the units in flight still fetch and extract after the Ctrl-C
    args = [*RUN, "-n", "8", "--turns", "2", "--concurrency", "3", "--host-rate", "4", "--json"]
    process = _start(args, swarm_env)
    deadline = time.monotonic() + 60
    while not any(p.startswith("/articles/") for p in website.paths()) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)  # while the first pages are read; reaches the extraction processes
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "--resume" in err, err
    (run_id, status, error), *_ = rows(isolated_db, "SELECT run_id, status, error FROM runs")
    assert status == "interrupted" and "SIGINT" in error
    assert rows(isolated_db, "SELECT count(*) FROM run_units WHERE status <> 'ok'") == [(0,)], (
        "the units in flight finished within the grace period"
    )
    broken = rows(isolated_db, "SELECT url, error_detail FROM pages WHERE error LIKE 'extract%'")
    assert broken == [], "a Ctrl-C must not break the extraction pool under the pages in flight"
    assert_counts_match_tables(isolated_db, run_id)


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_with_the_shells_exit_code(
    swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer
) -> None:
    llm_server.latency = 0.1
    process = _start([*RUN, "-n", "6", "--turns", "2", "--concurrency", "1", "--quiet"], swarm_env)
    _wait_for(isolated_db, "SELECT count(*) FROM conversations", 1)
    process.send_signal(signal.SIGTERM)  # what docker stop, systemd and kill send
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "--resume" in err, err
    (run_id, status, error), *_ = rows(isolated_db, "SELECT run_id, status, error FROM runs")
    assert status == "interrupted" and "SIGTERM" in error
    assert rows(isolated_db, "SELECT count(*) FROM run_units WHERE status <> 'ok'") == [(0,)]
    assert_counts_match_tables(isolated_db, run_id)


@pytest.mark.slow
def test_a_closed_stdout_does_not_stop_a_run_from_keeping_its_row_and_ending_properly(
    swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer
) -> None:
    llm_server.latency = 0.5  # about 12 s of work, so heartbeats and progress events fall after the close
    process = _start([*RUN, "-n", "6", "--turns", "1", "--concurrency", "1", "--json"], swarm_env)
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["event"] == "started"
    process.stdout.close()  # `swarm run --json | head -1`: the reader went away
    _wait_for(isolated_db, "SELECT count(*) FROM runs", 1)
    (before,) = rows(isolated_db, "SELECT updated_at FROM runs")[0]
    time.sleep(7)  # longer than a heartbeat; the progress display has failed to write by now
    (after, status) = rows(isolated_db, "SELECT updated_at, status FROM runs")[0]
    assert status == "running" and after > before, "the run's heartbeat must outlive its display"
    process.wait(timeout=120)
    (run_id, status), *_ = rows(isolated_db, "SELECT run_id, status FROM runs")
    assert status == "finished"
    assert assert_counts_match_tables(isolated_db, run_id)["conversations"] == 6


def test_resume_names_every_flag_it_ignores_even_one_set_to_its_default(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path
) -> None:
    code, out, err = cli(*RUN, "-n", "2", "--turns", "1", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    # --turns 4 is the default: only the command line can tell it was asked for
    code, _, err = cli("run", "--resume", run_id, "--turns", "4", "-n", "3", "--results", "2", "--quiet")
    assert code == 0, err
    assert "keeps its own config; ignoring -n, --turns, --results" in err
    code, _, err = cli("run", "--resume", run_id, "--quiet")
    assert code == 0 and "ignoring" not in err


def test_a_failed_metadata_step_keeps_the_conversation_and_resume_runs_only_that_step(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, llm_server: LLMServer, tmp_path: Path
) -> None:
    llm_server.schema_faults["Metadata"] = 4  # both units' metadata answers miss the schema, and so do the repairs
    code, out, err = cli(*RUN, "-n", "2", "--turns", "1", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    sql = "SELECT persona_id, status, json_extract_string(failed_steps, '$.metadata.reason'), CAST(messages AS VARCHAR)"
    kept = rows(isolated_db, f"{sql} FROM conversations ORDER BY 1")
    assert [k[1:3] for k in kept] == [("partial", "schema_invalid")] * 2, "the turns are kept, the failure said"
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["conversations"] == 2 and record["counts"]["conversations_partial"] == 2
    units = rows(isolated_db, "SELECT status, reason FROM run_units WHERE run_id = ?", [run_id])
    assert units == [("partial", "schema_invalid")] * 2
    said = rows(isolated_db, "SELECT DISTINCT answer FROM llm_calls WHERE purpose = 'metadata'")
    assert said == [('{"unexpected": true}',)], "what the model answered is kept to read"

    out_file = tmp_path / "train.jsonl"
    code, out, _ = cli("export", "--format", "openai", "-o", str(out_file))
    assert code == 0 and out.startswith("0 examples"), "partial conversations stay out of training files"
    assert "2 partial left out" in out
    code, out, _ = cli("export", "--format", "openai", "-o", str(out_file), "--include-partial")
    assert code == 0 and out.startswith("2 examples")

    llm_server.schema_faults["Metadata"] = 4  # the first resume's repairs fail too: still partial, not failed
    code, out, err = cli("run", "--resume", run_id, "--quiet")
    assert code == 0, err
    record = assert_counts_match_tables(isolated_db, run_id)
    assert record["counts"]["conversations_partial"] == 2 and record["counts"]["units_failed"] == 0
    assert "2 partial" in out and f"swarm run --resume {run_id}" in out

    before = dict(rows(isolated_db, "SELECT purpose, count(*) FROM llm_calls GROUP BY 1"))
    code, _, err = cli("run", "--resume", run_id, "--quiet")
    assert code == 0, err
    after = dict(rows(isolated_db, "SELECT purpose, count(*) FROM llm_calls GROUP BY 1"))
    assert {p: after[p] - before.get(p, 0) for p in after if after[p] != before.get(p, 0)} == {"metadata": 2}
    done = rows(isolated_db, f"{sql}, metadata IS NOT NULL FROM conversations ORDER BY 1")
    assert [d[1:3] + d[4:] for d in done] == [("complete", None, True)] * 2
    assert [d[3] for d in done] == [k[3] for k in kept], "the turns are the ones made before, not made again"
    code, out, _ = cli("export", "--format", "openai", "-o", str(out_file))
    assert code == 0 and out.startswith("2 examples")
