from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# rich fixes a console's width from COLUMNS when the console is made (at import); pytest-xdist's workers
# inherit the controller's COLUMNS. Unset, the width is read per call: the 200 each test sets below.
os.environ.pop("COLUMNS", None)

from agents.cli.demo import sample_personas_path
from tests.support.cli import Cli

if TYPE_CHECKING:
    from tests.support.llm_server import LLMServer

pytest_plugins = ["tests.support.site_server", "tests.support.llm_server"]  # website(s) and llm_server fixtures

FORMAT_EXAMPLES = Path(__file__).resolve().parent / "data" / "formats"  # persona files in the public layouts


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
    return FORMAT_EXAMPLES


@pytest.fixture
def cli() -> Cli:
    return Cli()


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
