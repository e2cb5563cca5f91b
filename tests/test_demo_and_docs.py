"""The README's promises: the demo works offline, the table reference matches the schema, CI runs the
README's test command, and the bundled sample personas are what the README says."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agents.cli.demo import sample_personas_path
from storage.schema_doc import END, START, markdown
from tests.conftest import REPO, Cli


def test_demo_seeds_the_hub_and_shows_a_sample_and_queries(cli: Cli, isolated_db: Path) -> None:
    code, out, err = cli("demo")
    assert code == 0, err
    assert "60 imported, 0 duplicates, 0 rejected" in out
    assert out.count("sample-0") == 8
    assert out.count("swarm query") + out.count("swarm personas sample") == 3
    code, out, _ = cli("demo")  # a second run adds nothing and still works
    assert code == 0 and "0 imported, 60 duplicates" in out
    code, out, _ = cli("query", "SELECT count(DISTINCT occupation) AS n FROM personas_flat", "-f", "jsonl")
    assert json.loads(out)["n"] >= 40


def test_the_demo_queries_it_prints_run(cli: Cli) -> None:
    code, out, _ = cli("demo")
    commands = [line.strip() for line in out.splitlines() if line.strip().startswith("swarm ")]
    assert len(commands) == 3
    import shlex

    for command in commands:
        code, _, err = cli(*shlex.split(command)[1:])
        assert code == 0, (command, err)


def test_bundled_personas_are_varied() -> None:
    rows = [json.loads(line) for line in sample_personas_path().read_text().splitlines()]
    assert len(rows) >= 50
    assert len({r["occupation"] for r in rows}) >= 40
    assert len({t for r in rows for t in r["topics"]}) >= 8


def test_readme_table_reference_is_generated_from_the_migrations() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(START) : readme.index(END) + len(END)]
    assert block == markdown(), "run: python -m storage.schema_doc and paste it into the README"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    quickstart = re.search(r"## Quickstart.*?```bash\n(.*?)```", readme, re.S)
    assert quickstart is not None
    commands = [c for c in quickstart.group(1).splitlines() if c.strip()]
    assert len(commands) == 2, "the Quickstart has exactly two commands"
    assert commands[0] == "./quickstart" and (REPO / "quickstart").exists()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == commands[1]
