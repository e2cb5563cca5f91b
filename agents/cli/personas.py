"""`swarm personas …`: import, count, sample and describe the persona hub."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from agents.cli.common import cli_errors, console, database, described, err_console, fail
from agents.cli.output import dumps, literal, plain, terminal_safe
from persona_hub import INPUT_FORMATS, LAYOUTS, ImportOptions, StrictRefused, count, import_files, sample, stats
from persona_hub.importer import DEFAULT_MAX_CHARS, ImportReport

app = typer.Typer(help="Import, filter, sample and describe the persona hub.", no_args_is_help=True)

WHERE_HELP = (
    "SQL condition over the columns of personas: the persona columns plus one typed column per "
    "attribute, e.g. \"occupation = 'nurse' AND age > 40\" or \"list_contains(topics, 'chess')\"."
)


@app.command("import")
@cli_errors
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Persona files: .jsonl .json .csv .tsv .parquet .txt (.gz too).")],
    text_field: Annotated[str | None, typer.Option(help="Field holding the persona text, when not recognised.")] = None,
    id_field: Annotated[str | None, typer.Option(help="Field holding the source's own persona id.")] = None,
    layout: Annotated[
        str | None, typer.Option(help=f"Use this layout instead of recognising it: {', '.join(LAYOUTS.names())}.")
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", help=f"Override the format: {', '.join(INPUT_FORMATS)}.")
    ] = None,
    dedup: Annotated[str, typer.Option(help="exact (normalised text), near (+ MinHash 0.9), or none.")] = "exact",
    strict: Annotated[bool, typer.Option(help="Import nothing if any line is bad.")] = False,
    max_chars: Annotated[int, typer.Option(help="Longest persona text accepted.")] = DEFAULT_MAX_CHARS,
) -> None:
    """Load personas from files; print imported / duplicate / rejected counts and every bad line.

    Examples:

      swarm personas import personas.jsonl

      swarm personas import nemotron.parquet finepersonas.jsonl --dedup near

      swarm personas import people.csv --text-field bio --id-field user_id --strict
    """
    if dedup not in ("exact", "near", "none"):
        raise fail(f"--dedup must be exact, near or none, not {dedup!r}", 2)
    options = ImportOptions(
        text_field=text_field,
        id_field=id_field,
        layout=layout,
        format=format,
        dedup=dedup,  # type: ignore[arg-type]  # checked just above
        strict=strict,
        max_chars=max_chars,
    )
    db = database()
    try:
        report = import_files(db, paths, options)
    except StrictRefused as exc:
        _print_rejects(exc.rejects, None, len(exc.rejects))
        raise fail(f"{described(exc, import_)}. The bad lines are listed above and stored in import_rejects.") from exc
    _print_report(report, str(db.path))


def _print_rejects(
    rejects: list[tuple[str, int | None, str]] | list[tuple[str, int | None, str, str | None]],
    import_id: str | None,
    total: int,
) -> None:
    for reject in rejects:
        path, line, reason = reject[0], reject[1], reject[2]
        detail = reject[3] if len(reject) > 3 else None
        where = f"{path}:{line}" if line is not None else path
        err_console.print(literal(f"{where}: {reason}" + (f" ({detail})" if detail else "")), soft_wrap=True)
    if total > len(rejects) and import_id:
        err_console.print(
            literal(
                f'… and {total - len(rejects)} more: swarm query "SELECT * FROM import_rejects '
                f"WHERE import_id = '{import_id}'\""
            ),
            soft_wrap=True,
        )


def _print_report(report: ImportReport, db_path: str) -> None:
    _print_rejects(report.rejects, report.import_id, report.rejects_total)
    for s in report.sources:
        near = f", {s.near_duplicates} near-duplicates" if s.near_duplicates else ""
        # a file name is the user's text: `[ab]*.jsonl` must print as it is, not as rich markup
        console.print(
            Text.assemble(
                literal(s.path),
                (f" ({s.format}, {s.layout})", "dim"),
                f": {s.imported} imported, {s.duplicates} duplicates{near}, {s.rejected} rejected",
            ),
            soft_wrap=True,
        )
    near_total = report.total("near_duplicates")
    console.print(
        Text.assemble(
            (f"{report.total('imported')} imported", "bold"),
            f", {report.total('duplicates')} duplicates"
            + (f", {near_total} near-duplicates" if near_total else "")
            + f", {report.rejects_total} rejected → ",
            literal(db_path),
            f" (import {report.import_id})",
        ),
        soft_wrap=True,
    )


@app.command("count")
@cli_errors
def count_(
    where: Annotated[str | None, typer.Option(help=WHERE_HELP)] = None,
) -> None:
    """Print how many personas match (one integer).

    Examples:

      swarm personas count

      swarm personas count --where "age BETWEEN 30 AND 50"
    """
    console.print(str(count(database(), where)))


@app.command("sample")
@cli_errors
def sample_(
    n: Annotated[int, typer.Option("-n", help="How many personas.")] = 10,
    where: Annotated[str | None, typer.Option(help=WHERE_HELP)] = None,
    seed: Annotated[int, typer.Option(help="The same seed gives the same sample.")] = 0,
    stratify_by: Annotated[str | None, typer.Option(help="Draw evenly across this column's values.")] = None,
    format: Annotated[str, typer.Option("--format", help="table or jsonl.")] = "table",
) -> None:
    """Draw a reproducible sample of personas.

    Examples:

      swarm personas sample -n 5 --seed 7

      swarm personas sample -n 20 --where "country = 'Kenya'" --format jsonl

      swarm personas sample -n 12 --stratify-by expertise
    """
    if format not in ("table", "jsonl"):
        raise fail(f"--format must be table or jsonl, not {format!r}", 2)
    result = sample(database(), n, where, seed, stratify_by)
    if format == "jsonl":
        # data, not terminal text: written as it is (rich would turn `:smile:` into an emoji)
        sys.stdout.write("".join(dumps({k: plain(v) for k, v in row.items()}) + "\n" for row in result.rows))
        sys.stdout.flush()
    else:
        stratum_header = [Column(header=literal(result.stratify_by))] if result.stratify_by else []
        table = Table("persona_id", "text", *stratum_header, "source")
        for row in result.rows:
            extra = [literal(row[result.stratify_by])] if result.stratify_by else []
            source = literal(f"{Path(row['source']).name}:{row['source_line']}")
            table.add_row(literal(row["persona_id"]), literal(row["text"]), *extra, source)
        console.print(table)
    if len(result.rows) < n:
        err_console.print(f"only {len(result.rows)} personas match; asked for {n}")
    for stratum in result.short_strata:
        err_console.print(
            literal(
                f"stratum {result.stratify_by}={stratum.value!r} has only {stratum.available} personas "
                f"(an even share is {n // len(result.strata)}); the rest came from other strata"
            )
        )


@app.command("stats")
@cli_errors
def stats_(
    top: Annotated[int, typer.Option(help="Most common values shown per attribute.")] = 3,
) -> None:
    """Counts by source and by attribute, and the import history.

    Example:

      swarm personas stats
    """
    result = stats(database(), top)
    console.print(f"[bold]{result.total}[/bold] personas")
    sources = Table("source", "layout", "personas", title="by source")
    for source, layout, n in result.by_source:
        sources.add_row(literal(source), literal(layout), str(n))
    console.print(sources)
    fields = Table("attribute", "type", "filled", "distinct", f"top {top}", title="by attribute")
    for name, sql_type, filled, distinct, values in result.fields:
        shown = ", ".join(f"{_short(v)} ({c})" for v, c in values)
        fields.add_row(literal(name), literal(sql_type), str(filled), str(distinct), literal(shown))
    console.print(fields)
    imports = Table("import", "finished", "status", "imported", "duplicates", "near dup.", "rejected", title="imports")
    for row in result.imports:
        imports.add_row(*(literal("" if v is None else str(v)[:19] if i == 1 else v) for i, v in enumerate(row)))
    console.print(imports)


def _short(value: object, width: int = 40) -> str:
    text = terminal_safe(str(value))  # before cutting, so an escape is never cut in half
    return text if len(text) <= width else text[: width - 1] + "…"
