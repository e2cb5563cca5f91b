"""Where a key of a TOML file is: so an error about `steps[2].output.fields.summary` can say its line.

Python's tomllib parses without positions, and the TOML libraries that keep them (tomlkit) expose
them only through their own document model. What is needed here is small: walk the lines, track the
table a header opens (`[a.b]`, `[[a]]`, counting arrays of tables), skip multi-line strings, and note
the line of each `key = …`. A key inside an inline table or an array value maps to its line.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def key_lines(text: str) -> dict[Path, int]:
    """(table path … key) → 1-based line, for every header and key line of `text`."""
    lines: dict[Path, int] = {}
    arrays: dict[tuple[str, ...], int] = {}  # an array of tables → index of its last element
    table: Path = ()
    closing: str | None = None  # the delimiter of a multi-line string being skipped
    for number, line in enumerate(text.splitlines(), start=1):
        if closing is not None:
            if _closes(line, closing):
                closing = None
            continue
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            names = _parts(header.group(2))
            if header.group(1) == "[[":
                arrays[tuple(names)] = arrays.get(tuple(names), -1) + 1
            table = _resolve(names, arrays)
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            path = (*table, *_parts(key.group(1)))
            lines.setdefault(path, number)
            rest = line[key.end() :]
            for delimiter in ('"""', "'''"):
                if rest.count(delimiter) == 1:
                    closing = delimiter
    return lines


def _closes(line: str, delimiter: str) -> bool:
    return delimiter in line.replace("\\" + delimiter[0], "")


def _resolve(names: list[str], arrays: dict[tuple[str, ...], int]) -> Path:
    """A header's path, with the index of each array of tables it passes through: `[steps.user]` after
    the third `[[steps]]` is ("steps", 2, "user")."""
    path: list[str | int] = []
    for i, name in enumerate(names):
        path.append(name)
        prefix = tuple(names[: i + 1])
        if prefix in arrays:
            path.append(arrays[prefix])
    return tuple(path)


def line_of(lines: dict[Path, int], location: Path) -> int | None:
    """The line of `location`, or of the nearest enclosing key or table that has one."""
    for end in range(len(location), 0, -1):
        if location[:end] in lines:
            return lines[location[:end]]
        # a table known only by what is in it (`[models.default]` for an error about `models`)
        inside = [line for path, line in lines.items() if path[:end] == location[:end]]
        if inside:
            return min(inside)
    return None
