"""Prompt templates, versioned by file name (`NAME.vN.md`); a conversation records the versions used.

Templates use `$name` placeholders (string.Template), so JSON and braces in them need no escaping.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

HERE = Path(__file__).parent
_NAME = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.md$")


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    template: Template

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def render(self, **values: str) -> str:
        return self.template.substitute(**values)


@functools.cache  # the files ship with the package: read once per process, not once per cycle
def load(name: str) -> Prompt:
    """The newest version of prompt `name`."""
    versions = sorted((int(m["version"]), path) for path in HERE.glob(f"{name}.v*.md") if (m := _NAME.match(path.name)))
    if not versions:
        raise FileNotFoundError(f"no prompt named {name!r} in {HERE}")
    version, path = versions[-1]
    return Prompt(name, version, Template(path.read_text(encoding="utf-8")))
