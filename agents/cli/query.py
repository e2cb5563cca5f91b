"""`swarm query SQL`: read-only SQL over every table, also while a run is writing."""

from __future__ import annotations

from typing import Annotated

import typer

from agents.cli.common import cli_errors, console, database, described, fail
from agents.cli.output import OUTPUT_FORMATS, write_rows
from storage import QueryTimeout, run_query

TIMEOUT_EXIT = 124  # what GNU timeout(1) exits with, so scripts can tell a stopped query from a bad one


@cli_errors
def query(
    sql: Annotated[str, typer.Argument(help="One read-only statement (SELECT, DESCRIBE, SHOW, EXPLAIN, …).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or jsonl.")] = "table",
    timeout: Annotated[
        float | None,
        typer.Option(help=f"Stop the query after this many seconds (exit {TIMEOUT_EXIT}).", show_default=False),
    ] = None,
) -> None:
    """Run read-only SQL over personas, pages, conversations, llm_calls, runs and the rest.

    Statements that would change anything (INSERT, UPDATE, DELETE, DROP, CREATE, ATTACH, COPY … TO,
    INSTALL, SET, EXPLAIN ANALYZE, state-changing PRAGMA or table functions, …) are refused before they
    run, and no extension is installed or loaded. Works while another swarm process is writing the same
    database: the query waits for the writer's current batch (see --wait).

    Ctrl-C stops a running query (exit 130); --timeout stops it after that many seconds (exit 124).
    Table output shows control characters as escapes (\\x1b); csv, json and jsonl print the data as it is.

    Examples:

      swarm query "SELECT count(*) FROM personas"

      swarm query "SELECT occupation, count(*) FROM personas GROUP BY 1 ORDER BY 2 DESC" -f csv

      swarm query "SELECT * FROM import_rejects" --format jsonl

      swarm query "SHOW TABLES"

      swarm query "SELECT url, length(text) FROM pages ORDER BY 2 DESC" --timeout 10
    """
    if format not in OUTPUT_FORMATS:
        raise fail(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, not {format!r}", 2)
    if timeout is not None and not timeout > 0:
        raise fail(f"--timeout must be more than 0 seconds, not {timeout:g}", 2)
    try:
        with run_query(database(), sql, timeout=timeout) as result:
            write_rows(
                format, result.columns, result.batches(), result.types, console=console if format == "table" else None
            )
    except QueryTimeout as exc:
        raise fail(described(exc, query), TIMEOUT_EXIT) from exc
