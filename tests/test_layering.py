"""The packages import one way: storage ← persona_hub, crawler ← agents (DESIGN.md)."""

from __future__ import annotations

import ast

from tests.conftest import REPO

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
