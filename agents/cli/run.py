"""`swarm run` (a swarm run, live progress, resume) and `swarm runs list|show`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from agents.cli.common import cli_errors, console, database, err_console, fail
from agents.cli.crawl import _read_urls
from agents.cli.output import literal
from agents.runs import RunConfig
from crawler.search_backends import SEARCH_BACKENDS

if TYPE_CHECKING:  # the swarm is imported by the command that runs it (openai, the crawler: ~1 s)
    from agents.display import Display

runs_app = typer.Typer(help="Runs: status, counts, tokens, cost and timings.", no_args_is_help=False)


def exit_code(record: dict[str, Any]) -> int:
    """An interrupted run exits as the shell expects: 128 + the signal's number (130 Ctrl-C, 143 SIGTERM)."""
    return 143 if "SIGTERM" in str(record.get("error")) else 130


D = RunConfig  # its class attributes are the defaults: one place for each, read by the flags below
_NOT_CONFIG = {"resume", "quiet", "json_lines"}  # flags about this session, not the run's config


def _given(ctx: typer.Context, name: str | None) -> bool:
    """Whether the user set this flag (on the command line or through its environment variable)."""
    source = ctx.get_parameter_source(name) if name else None
    # by name: typer vendors its own click, whose ParameterSource is not click's
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _finish(record: dict[str, Any], quiet: bool, json_lines: bool = False) -> None:
    run_id, status = record["run_id"], record["status"]
    for warning in record.get("warnings", []):  # on stderr: stdout is the run id, or JSON lines with --json
        err_console.print(Text.assemble(("note: ", "yellow"), literal(warning)), soft_wrap=True)
    if status == "finished":
        if not quiet:
            console.print(
                f"\nexport it:  swarm export --run {run_id} --format openai -o {run_id}.jsonl\n"
                f"look at it: swarm query \"SELECT persona_id, json_extract_string(metadata, '$.summary') AS summary "
                f"FROM conversations WHERE run_id = '{run_id}'\"",
                markup=False,
                soft_wrap=True,
            )
        if not json_lines:  # its `finished` event carries the id; stdout stays JSON lines only
            console.print(run_id, markup=False)
        return
    if status == "interrupted":
        raise fail(f"run {run_id} interrupted; continue it with: swarm run --resume {run_id}", exit_code(record))
    if status == "taken_over":
        raise fail(f"run {run_id}: {record.get('error')}; see swarm runs show {run_id}")
    raise fail(f"run {run_id} failed: {record.get('error')}; after fixing it: swarm run --resume {run_id}")


@cli_errors
def run(
    ctx: typer.Context,
    where: Annotated[
        str | None, typer.Option(help='SQL filter over personas and their attribute columns, e.g. "age > 60".')
    ] = None,
    n: Annotated[int, typer.Option("-n", help="Personas to sample.")] = D.n,
    seed: Annotated[int, typer.Option(help="Sample seed: the same seed gives the same personas.")] = D.seed,
    stratify_by: Annotated[str | None, typer.Option(help="Draw evenly across this column's values.")] = None,
    concurrency: Annotated[int, typer.Option(help="Agents (personas) worked on at once.")] = D.concurrency,
    turns: Annotated[int, typer.Option(help="User turns per conversation at most.")] = D.turns,
    cycles: Annotated[
        int, typer.Option(help="Cycles per persona; each follows the last one's next question.")
    ] = D.cycles,
    pages: Annotated[int, typer.Option(help="Pages read per cycle.")] = D.pages,
    variations: Annotated[int, typer.Option(help="Rephrased prompt/response pairs per conversation.")] = D.variations,
    search: Annotated[
        str | None, typer.Option(help=f"Discover pages by search: {', '.join(SEARCH_BACKENDS.names())}.")
    ] = None,
    results: Annotated[int, typer.Option(help="Search hits read per query.")] = D.results_per_query,
    search_rate: Annotated[
        float, typer.Option(help="Searches per second (0 = unlimited, for your own).")
    ] = D.search_rate,
    search_concurrency: Annotated[int, typer.Option(help="Searches in flight at once.")] = D.search_concurrency,
    urls_file: Annotated[
        Path | None, typer.Option("--urls", help="Seed URLs, one a line, read by every agent.")
    ] = None,
    depth: Annotated[int, typer.Option(help="Follow links this many hops from the --urls seeds.")] = D.depth,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint (default OPENAI_BASE_URL, else the embedded local model)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (default SWARM_MODEL).")] = None,
    llm_concurrency: Annotated[
        int, typer.Option(help="LLM requests in flight at most (shared by all agents).")
    ] = D.llm_concurrency,
    allow_private: Annotated[
        bool, typer.Option(help="Allow loopback/private addresses (local sites).")
    ] = D.allow_private,
    host_rate: Annotated[float, typer.Option(help="Requests per second per host; 0 = unlimited.")] = D.host_rate,
    host_concurrency: Annotated[int, typer.Option(help="Connections at once per host.")] = D.host_concurrency,
    render: Annotated[str, typer.Option(help="auto, never or always (JavaScript pages).")] = D.render,
    grace: Annotated[float, typer.Option(help="Seconds units in flight get to finish after Ctrl-C.")] = D.grace,
    recipe: Annotated[
        str | None,
        typer.Option(help="The steps of each cycle: a recipe file, or a bundled name (swarm recipe list)."),
    ] = None,
    checks: Annotated[
        bool,
        typer.Option("--checks/--no-checks", help="Check each conversation as it is made (else later, by swarm eval)."),
    ] = D.checks,
    resume: Annotated[str | None, typer.Option(help="Continue this run with its own config.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress; the summary at the end.")] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="Progress as JSON lines on stdout.")] = False,
) -> None:
    """Run the swarm: sample personas, let each agent search, read and talk, store the conversations.

    Prints the run id at the end. Ctrl-C stops starting new work and lets units in flight finish (a second
    Ctrl-C abandons them); either way the run can be continued with --resume.

    Examples:

      SEARXNG_URL=http://localhost:8888 swarm run -n 100 --where "age > 60" --search searxng --cycles 2

      OPENAI_BASE_URL=http://localhost:11434/v1 SWARM_MODEL=qwen2.5:7b swarm run --urls seeds.txt --depth 1

      swarm run -n 20 --urls seeds.txt --recipe my-recipe.toml

      swarm run --resume run_20261126T101500_a1b2c3
    """
    from agents.cli.run_display import JsonLinesDisplay, LiveDisplay, QuietDisplay
    from agents.launch import execute

    display: Display = JsonLinesDisplay() if json_lines else QuietDisplay() if quiet else LiveDisplay()
    if render not in ("auto", "never", "always"):
        raise fail(f"--render must be auto, never or always, not {render!r}", 2)
    if min(n, concurrency, turns, cycles, pages, results, llm_concurrency, host_concurrency) < 1:
        raise fail(
            "-n, --concurrency, --turns, --cycles, --pages, --results, --llm-concurrency and "
            "--host-concurrency must be at least 1",
            2,
        )
    config = RunConfig(
        where=where,
        n=n,
        seed=seed,
        stratify_by=stratify_by,
        concurrency=concurrency,
        turns=turns,
        cycles=cycles,
        pages=pages,
        variations=variations,
        search=search,
        results_per_query=results,
        search_rate=search_rate,
        search_concurrency=search_concurrency,
        urls=_read_urls(urls_file) if urls_file else [],
        depth=depth,
        allow_private=allow_private,
        host_rate=host_rate,
        host_concurrency=host_concurrency,
        render=render,
        base_url=base_url,
        model=model,
        llm_concurrency=llm_concurrency,
        grace=grace,
        recipe=recipe,
        checks=checks,
    )
    if resume:
        given = [p for p in ctx.command.params if p.name not in _NOT_CONFIG and _given(ctx, p.name)]
        if given:
            flags = ", ".join(p.opts[0] for p in given)
            err_console.print(f"note: a resumed run keeps its own config; ignoring {flags}", soft_wrap=True)
    record = asyncio.run(execute(database(), config, display, resume=resume))
    _finish(record, quiet or json_lines, json_lines)


@runs_app.callback(invoke_without_command=True)
def _runs(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        runs_list()


@runs_app.command("list")
@cli_errors
def runs_list(limit: Annotated[int, typer.Option(help="Most recent runs to show.")] = 20) -> None:
    """The most recent runs: status, personas, conversations, failures, tokens, cost, time."""
    from agents.runs import RunStore, status_of

    rows = RunStore(database()).recent(limit)
    if not rows:
        console.print("no runs yet: start one with swarm run (or swarm demo)")
        return
    table = Table("run", "status", "started", "personas", "conversations", "failed", "pages", "tokens", "cost", "time")
    for r in rows:
        table.add_row(
            r["run_id"],
            status_of(r),
            r["started_at"].strftime("%Y-%m-%d %H:%M"),
            str(r["personas"]),
            str(r["conversations"] or 0),
            str(r["failed_units"] or 0),
            f"{r['pages_ok'] or 0}/{(r['pages_ok'] or 0) + (r['pages_failed'] or 0)}",
            f"{(r['prompt_tokens'] or 0) + (r['completion_tokens'] or 0):,}",
            f"${r['cost_usd'] or 0:.4f}",
            f"{r['elapsed_s'] or 0:.0f}s",
        )
    console.print(table)


@runs_app.command("show")
@cli_errors
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id (swarm runs list).")],
    as_json: Annotated[bool, typer.Option("--json", help="The whole row as JSON.")] = False,
) -> None:
    """One run: its status, counts, failures by reason, tokens, cost, timings and full config."""
    from agents.cli.run_display import summary_table
    from agents.runs import RunStore, status_of

    record = RunStore(database()).get(run_id)
    if record is None:
        raise fail(f"no run {run_id}: see swarm runs list")
    record["status"] = status_of(record)
    if as_json:
        console.print_json(json.dumps(record, default=str))
        return
    console.print(summary_table(record))
    console.print(
        f"started {record['started_at']:%Y-%m-%d %H:%M:%S %Z}"
        + (f", ended {record['finished_at']:%Y-%m-%d %H:%M:%S %Z}" if record["finished_at"] else "")
    )
    if record.get("recipe_hash"):
        name = (record["config"] or {}).get("recipe") or "default"
        console.print(
            f"recipe {name} ({record['recipe_hash']}); its text: swarm recipe show --run {run_id}",
            markup=False,
            soft_wrap=True,
        )
    console.print("config:", markup=False)
    console.print_json(json.dumps(record["config"], default=str))
    if record["status"] in ("interrupted", "failed", "stale"):
        console.print(f"continue it with: swarm run --resume {run_id}", markup=False)


__all__ = ["run", "runs_app"]
