"""Extension points as a third-party package uses them: an installed distribution whose entry points add a
search backend, an export format and a persona layout, used from the CLI in real processes."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agents.cli.demo import sample_personas_path
from agents.export import EXPORT_FORMATS, ExportOptions, export
from agents.recipes import default
from storage import Database
from storage.registry import Registry, UnknownName
from tests.support.cli import RUN, swarm_subprocess
from tests.support.runs import rows
from tests.support.site_server import Site

PLUGIN = '''
import json, os
from crawler.search import SearchBackend, SearchHit
from persona_hub.layouts import Layout


class LocalHits(SearchBackend):
    """Answers every query with the first articles of the site in $PLUGIN_SITE."""
    name = "localhits"

    async def search(self, query, count=10):
        base = os.environ["PLUGIN_SITE"]
        return [SearchHit(f"{base}/articles/{n}.html", f"#{n}", "", n, self.name) for n in range(1, count + 1)]


def plain(rows, path, options):
    """One line a conversation: its id and its first user message."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            first = json.loads(row["messages_json"])[0]["content"]
            fh.write(row["conversation_id"] + "\\t" + first.replace("\\n", " ") + "\\n")
    return len(rows)


def bios(have):
    return Layout("bios", "bio", "handle") if {"bio", "handle"} <= have else None


def crashing(have):
    raise KeyError("boom")


NOT_CALLABLE = 42


from agents.steps import StepKind


class WordCount(StepKind):
    """Counts the words of the conversation (no model call)."""
    prompt = "none"

    async def run(self, state):
        words = sum(len(m["content"].split()) for m in state.conversation.messages)
        state.conversation.outputs[self.name] = {"words": words}
'''

ENTRY_POINTS = """
[persona_swarm.search_backends]
localhits = swarm_plugin_demo:LocalHits

[persona_swarm.exporters]
plain = swarm_plugin_demo:plain
notcallable = swarm_plugin_demo:NOT_CALLABLE

[persona_swarm.steps]
wordcount = swarm_plugin_demo:WordCount

[persona_swarm.layouts]
bios = swarm_plugin_demo:bios
broken = swarm_plugin_demo_missing:nothing
crashing = swarm_plugin_demo:crashing
"""


@pytest.fixture
def plugin(tmp_path: Path, website: Site) -> dict[str, str]:
    """The package installed as pip would leave it: a module and its .dist-info beside it on the path."""
    site_packages = tmp_path / "site-packages"
    (site_packages / "swarm_plugin_demo-0.1.dist-info").mkdir(parents=True)
    (site_packages / "swarm_plugin_demo.py").write_text(PLUGIN)
    info = site_packages / "swarm_plugin_demo-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: swarm-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    website.robots = "User-agent: *\nAllow: /\n"
    return {"PYTHONPATH": str(site_packages), "PLUGIN_SITE": website.base}


def test_a_packages_search_backend_is_listed_and_crawls(plugin: dict[str, str], isolated_db: Path) -> None:
    done = swarm_subprocess("crawl", "--help", env={**plugin, "COLUMNS": "300"})
    assert "searxng, duckduckgo, brave, localhits" in done.stdout
    done = swarm_subprocess(
        "crawl", "--search", "localhits", "--query", "anything", "--results", "3", "--allow-private",
        "--host-rate", "0", "--render", "never", "--quiet", env=plugin,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fetched = rows(isolated_db, "SELECT url FROM pages WHERE error IS NULL ORDER BY url")
    assert [u for (u,) in fetched] == [f"{plugin['PLUGIN_SITE']}/articles/{n}.html" for n in (1, 2, 3)]


def test_a_packages_step_kind_is_listed_and_a_recipe_can_use_it(plugin: dict[str, str], tmp_path: Path) -> None:
    done = swarm_subprocess("recipe", "kinds", env={**plugin, "COLUMNS": "200"})
    assert done.returncode == 0 and "wordcount" in done.stdout and "Counts the words" in done.stdout
    recipe = tmp_path / "counted.toml"
    recipe.write_text(default().text + '\n[[steps]]\nname = "length"\nkind = "wordcount"\n')
    done = swarm_subprocess("recipe", "check", str(recipe), env=plugin)
    assert done.returncode == 0 and "length (wordcount): no prompt" in done.stdout, done.stderr
    done = swarm_subprocess("recipe", "check", str(recipe))  # without the package: a clear error, its line
    assert done.returncode == 1 and "steps[9].kind: unknown step kind 'wordcount'" in done.stderr


def test_a_packages_layout_is_recognised(plugin: dict[str, str], tmp_path: Path, isolated_db: Path) -> None:
    people = tmp_path / "people.jsonl"
    people.write_text(
        "".join(json.dumps({"handle": f"u{i}", "bio": f"A glassblower, number {i}."}) + "\n" for i in range(3))
    )
    done = swarm_subprocess("personas", "import", str(people), env=plugin)
    assert done.returncode == 0, done.stderr
    assert rows(isolated_db, "SELECT layout, source_id, text FROM personas ORDER BY source_id")[0] == (
        "bios", "u0", "A glassblower, number 0."
    )  # fmt: skip


def test_a_broken_package_is_named_and_skipped_not_a_crash(
    plugin: dict[str, str], tmp_path: Path, isolated_db: Path
) -> None:
    people = tmp_path / "people.jsonl"
    people.write_text(json.dumps({"handle": "u0", "bio": "A glassblower."}) + "\n")
    done = swarm_subprocess("personas", "import", str(people), "--layout", "broken", env=plugin)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "'broken' from the package swarm-plugin-demo failed to load: ModuleNotFoundError" in done.stderr
    done = swarm_subprocess("personas", "import", str(people), "--layout", "nemotron", env=plugin)
    assert done.returncode == 1 and "do not have the fields of the 'nemotron' layout" in done.stderr
    # a package's rule that raises is skipped, said, and every other import goes on
    done = swarm_subprocess("personas", "import", str(sample_personas_path()), env=plugin)
    assert done.returncode == 0 and "'crashing' failed: KeyError" in done.stderr and "Traceback" not in done.stderr
    done = swarm_subprocess("personas", "import", str(people), "--layout", "crashing", env=plugin)
    assert done.returncode == 1 and "--layout: the layout rule 'crashing' failed: KeyError" in done.stderr
    # an entry point that is no function is refused by name, before anything is written
    out = tmp_path / "never.txt"
    done = swarm_subprocess("export", "--format", "notcallable", "-o", str(out), env=plugin)
    assert done.returncode == 1 and "from the package swarm-plugin-demo is a int" in done.stderr
    assert not out.exists() and "Traceback" not in done.stderr


@pytest.mark.slow  # a whole swarm run in a subprocess
def test_a_packages_export_format_writes_a_runs_conversations(
    plugin: dict[str, str], swarm_env: dict[str, str], isolated_db: Path
) -> None:
    env = {**swarm_env, **plugin}
    args = [a for a in RUN if a not in ("--search", "searxng")]
    recipe = isolated_db.parent / "counted.toml"
    recipe.write_text(default().text + '\n[[steps]]\nname = "length"\nkind = "wordcount"\n')
    done = swarm_subprocess(
        *args, "--search", "localhits", "-n", "2", "--turns", "1", "--recipe", str(recipe), "--quiet", env=env,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counted = rows(isolated_db, "SELECT CAST(outputs->>'$.length.words' AS INT) FROM conversations")
    assert len(counted) == 2 and all(n > 0 for (n,) in counted), "the package's step ran in every cycle"
    out = isolated_db.parent / "plain.tsv"
    done = swarm_subprocess("export", "--format", "plain", "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert "2 examples" in done.stdout
    lines = out.read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(
        c for (c,) in rows(isolated_db, "SELECT conversation_id FROM conversations")
    )
    done = swarm_subprocess("export", "--format", "nope", "-o", str(out), env=env)
    assert done.returncode == 1 and "choose one of: openai, sharegpt, parquet, plain, notcallable" in done.stderr


def test_code_registers_with_the_decorator_and_unknown_names_list_the_choices(isolated_db: Path) -> None:
    registry: Registry[Any] = Registry("persona_swarm.tests_only", "widget", builtins={"join": "os.path:join"})
    assert registry.get("join") is os.path.join  # a built-in is a "module:attribute" reference, imported when asked

    @registry.register("Shiny")
    def shiny() -> str:
        return "shiny"

    assert registry.names() == ["join", "shiny"] and registry.get("SHINY") is shiny
    with pytest.raises(UnknownName, match="unknown widget 'dull'; choose one of: join, shiny"):
        registry.get("dull")
    broken: Registry[Any] = Registry("persona_swarm.tests_only", "widget", builtins={"gone": "no_such_module:x"})
    with pytest.raises(UnknownName, match="'gone' from the package persona-swarm failed to load: ModuleNotFoundError"):
        broken.get("gone")

    written: list[int] = []

    @EXPORT_FORMATS.register("count_only")
    def count_only(rows: list[dict[str, Any]], path: Path, options: ExportOptions) -> int:
        path.write_text(str(len(rows)))
        written.append(len(rows))
        return len(rows)

    with Database(isolated_db).write():  # an empty hub exports nothing, in any registered format
        pass
    try:
        report = export(Database(isolated_db), isolated_db.parent / "n.txt", "count_only")
    finally:
        EXPORT_FORMATS.unregister("count_only")
    assert "count_only" not in EXPORT_FORMATS.names()
    assert report.written == 0 and written == [0] and (isolated_db.parent / "n.txt").read_text() == "0"
