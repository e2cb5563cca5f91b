"""The packages import one way: storage ← persona_hub, crawler ← agents."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.support.cli import REPO, Cli

FORBIDDEN = {
    "storage": {"persona_hub", "crawler", "agents"},
    "persona_hub": {"crawler", "agents"},
    "crawler": {"persona_hub", "agents"},
}


def test_packages_import_one_way() -> None:
    offences = []
    for package, banned in FORBIDDEN.items():
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                offences += [f"{path.relative_to(REPO)} imports {n}" for n in names if n.split(".")[0] in banned]
    assert offences == []


def test_the_cli_loads_the_llm_and_crawler_stacks_only_for_commands_that_use_them() -> None:
    # `swarm query` and `swarm personas …` are run by hand, often: they must not pay ~1 s of imports
    # (openai, httpx, trafilatura, playwright) that only `run`, `crawl`, `demo` and `export` need

    heavy = ("openai", "httpx", "trafilatura", "playwright")
    code = f"import sys, agents.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_error_a_user_meets_derives_from_one_base_with_a_reason() -> None:
    # the CLI prints a SwarmError as one line (and its hint); anything else is a bug with a traceback
    from agents.export import ExportError
    from agents.llm.errors import LLMError, Status
    from agents.llm.local import LocalModelUnavailable
    from agents.runs import RunError
    from crawler.render import RenderUnavailable
    from crawler.search.base import SearchError, SearchReason
    from persona_hub.errors import PersonaHubError
    from storage.errors import StorageError, SwarmError
    from storage.registry import UnknownName

    roots = [ExportError, LLMError, LocalModelUnavailable, RunError, RenderUnavailable, SearchError,
             PersonaHubError, StorageError, UnknownName]  # fmt: skip
    assert [r.__name__ for r in roots if not issubclass(r, SwarmError)] == []
    found = SearchError("brave", SearchReason.BAD_KEY, "the key was refused")
    assert found.reason == "bad_key" and str(found) == "brave search: the key was refused"
    assert LLMError("slow", Status.TIMEOUT).reason == "timeout" and RunError("x").reason == "error"


def test_library_errors_name_settings_and_the_cli_names_its_flags(cli: Cli) -> None:
    from persona_hub import BadFilter

    error = BadFilter("bad {--where} ('x'); try {--stratify_by}")
    assert str(error) == "bad `where` ('x'); try `stratify_by`"  # what a Python caller sees
    from agents.cli.demo import sample_personas_path

    assert cli("personas", "import", str(sample_personas_path()))[0] == 0
    code, _, err = cli("personas", "sample", "--stratify-by", "nope")  # the same kind of error, from the CLI
    assert code == 1 and "--stratify-by 'nope' is not a column" in err and "{--" not in err and "`" not in err
    code, _, err = cli("personas", "import", "nothing.weird")
    assert code == 1 and "pass --format (jsonl" in err
