"""The `swarm` command: one Typer app, each command group in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from agents.cli import crawl, demo, evaluate, export, personas, query, recipe, run, serve
from agents.cli.common import state

app = typer.Typer(
    name="swarm",
    help="persona-swarm: a persona hub and a crawling agent swarm that writes web-grounded conversations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    db: Annotated[
        str | None, typer.Option("--db", envvar="SWARM_DB", help="DuckDB file (default ./swarm.duckdb).")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another process's write to finish.")] = 30.0,
) -> None:
    state.db_path = db
    state.lock_timeout = wait


app.add_typer(personas.app, name="personas")
app.command("query")(query.query)
app.command("crawl")(crawl.crawl)
app.command("run")(run.run)
app.add_typer(run.runs_app, name="runs")
app.add_typer(recipe.app, name="recipe")
app.command("eval")(evaluate.evaluate_command)
app.command("export")(export.export_command)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("report")(serve.report)


def main() -> None:
    app()
