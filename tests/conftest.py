from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from agents.cli import app
from agents.cli.demo import sample_personas_path

if TYPE_CHECKING:
    from tests.llm_server import LLMServer

pytest_plugins = ["tests.site_server", "tests.llm_server"]  # website(s) and llm_server fixtures

REPO = Path(__file__).resolve().parent.parent
FORMATS = Path(__file__).resolve().parent / "data" / "formats"  # persona files in the public layouts


@pytest.fixture(autouse=True)
def isolated_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own database file, as a user would with SWARM_DB."""
    path = tmp_path / "swarm.duckdb"
    monkeypatch.setenv("SWARM_DB", str(path))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wide enough to read in assertions
    return path


@pytest.fixture
def formats() -> Path:
    """Small persona files (and search answers) in the public datasets' layouts: tests/data/README.md."""
    return FORMATS


class Cli:
    """Drive `swarm` as a user would; returns (exit code, stdout, stderr)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = self.runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli() -> Cli:
    return Cli()


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


@pytest.fixture
def swarm_env(website: Any, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> dict[str, str]:
    """Personas imported; search, crawl and LLM pointed at the local servers (as a user's environment)."""
    website.robots = "User-agent: *\nAllow: /\n"
    env = {
        "SEARXNG_URL": website.base,
        "OPENAI_BASE_URL": llm_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "SWARM_MODEL": "test-model",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = cli("personas", "import", str(sample_personas_path()))
    assert code == 0, err
    return env


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
