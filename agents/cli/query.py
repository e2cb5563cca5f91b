"""`swarm query SQL`: read-only SQL over every table, also while a run is writing."""

from __future__ import annotations

from typing import Annotated

import typer

from agents.cli.common import cli_errors, console, database, fail
from agents.cli.output import FORMATS, write_rows
from storage import run_query


@cli_errors
def query(
    sql: Annotated[str, typer.Argument(help="One read-only statement (SELECT, DESCRIBE, SHOW, EXPLAIN, …).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or jsonl.")] = "table",
) -> None:
    """Run read-only SQL over personas, pages, conversations, llm_calls, runs and the rest.

    Statements that would change anything (INSERT, UPDATE, DELETE, DROP, CREATE, ATTACH, COPY … TO,
    state-changing PRAGMA, …) are refused before they run. Works while another swarm process is
    writing the same database: the query waits for the writer's current batch (see --wait).

    Examples:

      swarm query "SELECT count(*) FROM personas"

      swarm query "SELECT occupation, count(*) FROM personas GROUP BY 1 ORDER BY 2 DESC" -f csv

      swarm query "SELECT * FROM import_rejects" --format jsonl

      swarm query "SHOW TABLES"
    """
    if format not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, not {format!r}", 2)
    with run_query(database(), sql) as result:
        write_rows(
            format, result.columns, result.batches(), result.types, console=console if format == "table" else None
        )
