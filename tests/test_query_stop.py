"""Stopping `swarm query`: Ctrl-C ends a long query at once with exit 130 and one line, --timeout
ends it after that many seconds with exit 124. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import Cli

# minutes of work on this machine's two cores: it is still running whenever it is stopped
LONG = "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"
STREAMING = "SELECT i FROM range(100000000000) t(i) WHERE i % 1000000000000 = 5"


@pytest.fixture
def seeded(cli: Cli, formats: Path) -> None:
    code, _, err = cli("personas", "import", str(formats / "finepersonas.jsonl"))
    assert code == 0, err


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "swarm"), "query", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
        # a shell's background job ignores SIGINT, and a child inherits that: give it the usual Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_until_querying(proc: subprocess.Popen[str], db: Path, limit: float = 30) -> float:
    """Wait until the process has the database open (its query is about to run); return that moment."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            links = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        except (FileNotFoundError, ProcessLookupError):
            links = []
        if str(db) in links:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError("the query never opened the database")


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"swarm query was still running {timeout:g}s later") from None
    return proc.returncode, out, err


@pytest.mark.parametrize("sql", [LONG, STREAMING], ids=["aggregate", "streaming"])
def test_ctrl_c_stops_a_long_query_with_exit_130_and_no_traceback(isolated_db: Path, seeded: None, sql: str) -> None:
    proc = _start(sql, "-f", "csv")
    _wait_until_querying(proc, isolated_db)
    time.sleep(0.5)  # well inside the query
    stopped = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, _out, err = _finish(proc, timeout=15)
    assert code == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert time.monotonic() - stopped < 5


def test_timeout_stops_a_long_query_after_about_that_long(isolated_db: Path, seeded: None) -> None:
    proc = _start(LONG, "--timeout", "1")
    started = _wait_until_querying(proc, isolated_db)
    code, out, err = _finish(proc, timeout=30)
    took = time.monotonic() - started
    assert code == 124, err
    assert "--timeout 1s" in err and "nothing was changed" in err and "Traceback" not in err
    assert out == ""
    assert 0.9 < took < 4, took


def test_a_query_within_its_timeout_prints_its_rows(cli: Cli, seeded: None) -> None:
    code, out, err = cli("query", "SELECT count(*) AS n FROM personas", "-f", "csv", "--timeout", "30")
    assert code == 0 and out.splitlines() == ["n", "2"], err
    code, _, err = cli("query", "SELECT 1", "--timeout", "0")
    assert code == 2 and "--timeout must be more than 0 seconds" in err
