"""Driving `swarm` as a user does (in-process, or the installed script in a real process), and other
processes a test needs (one holding the database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from agents.cli import app

REPO = Path(__file__).resolve().parents[2]


class Cli:
    """Drive `swarm` as a user would; returns (exit code, stdout, stderr)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = self.runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr


def swarm_subprocess(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a real process."""
    exe = Path(sys.executable).parent / "swarm"
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


# a run against the local servers: search on the test site, crawl it (loopback), no browser
RUN = ["run", "--search", "searxng", "--search-rate", "0", "--allow-private", "--host-rate", "0", "--render", "never"]


def running(pid: int) -> bool:
    """The process is alive and not a zombie waiting for a parent that is gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def hold_database(path: Path, seconds: float, *, read_only: bool = True) -> subprocess.Popen[str]:
    """Another process holding the database file for `seconds`: a reader (`swarm query`, `swarm
    export`) or, with read_only=False, a writer. Returns once the file is held."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only={read_only}); "
            f"print('locked', flush=True); time.sleep({seconds}); c.close()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder
