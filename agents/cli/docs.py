"""The CLI reference, docs/cli.md, generated from the typer app with typer's own generator:

    python -m agents.cli.docs > docs/cli.md

A test checks that the file holds exactly this text, so the reference cannot drift from `--help`.
"""

from __future__ import annotations

import typer
import typer.cli

from agents.cli.app import app

INTRO = """Every command and option, generated from the commands themselves (`python -m agents.cli.docs`);
`swarm COMMAND --help` prints the same. Global options come before the command:
`swarm --db other.duckdb personas count`."""


def markdown() -> str:
    command = typer.main.get_command(app)
    text = typer.cli.get_docs_for_click(obj=command, ctx=typer.Context(command), name="swarm", title="CLI reference")
    title, _, rest = text.partition("\n")
    return f"{title}\n\n{INTRO}\n{rest.rstrip()}\n"


if __name__ == "__main__":
    print(markdown(), end="")
