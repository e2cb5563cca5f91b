"""`swarm export`: conversations as training-ready files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agents.cli.common import cli_errors, console, database
from agents.export import EXPORT_COLUMNS, EXPORT_FORMATS, ExportError, export


@cli_errors
def export_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(EXPORT_FORMATS.names())}.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (replaced when done).")],
    run: Annotated[str | None, typer.Option("--run", help="Only this run's conversations.")] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help=f"SQL filter over: {', '.join(EXPORT_COLUMNS)}, and each field of the recipe's structured "
            "steps (tags, sentiment, … in the default recipe).",
            show_default=False,
        ),
    ] = None,
    dedup: Annotated[
        bool, typer.Option("--dedup/--no-dedup", help="Drop near-identical conversations (MinHash, word 3-grams).")
    ] = False,
    threshold: Annotated[float, typer.Option(help="Similarity at which --dedup drops a conversation.")] = 0.9,
    variations: Annotated[
        bool, typer.Option("--variations", help="Add each stored variation as a one-turn example (JSONL formats).")
    ] = False,
    system: Annotated[
        str | None,
        typer.Option(help="A system message to prepend; 'persona' describes the user from the persona text."),
    ] = None,
    include_all: Annotated[
        bool,
        typer.Option("--all", help="Also conversations that failed a blocking quality check or were not checked."),
    ] = False,
    min_score: Annotated[
        list[str] | None,
        typer.Option(
            "--min-score",
            help="CHECK=X: only conversations whose CHECK (or judge) scored at least X, 0–1 (repeatable).",
            show_default=False,
        ),
    ] = None,
    include_partial: Annotated[
        bool,
        typer.Option(
            "--include-partial", help="Also conversations whose metadata or variations step failed (status partial)."
        ),
    ] = False,
) -> None:
    """Write conversations for fine-tuning: OpenAI chat JSONL, ShareGPT JSONL, or Parquet with metadata.

    Only conversations that passed every blocking quality check are written unless --all is given
    (docs/quality.md); Parquet carries every score.

    Examples:

      swarm export --run run_20261126T101500_a1b2c3 --format openai -o train.jsonl

      swarm export --format sharegpt --where "sentiment <> 'negative' AND turns >= 2" --dedup -o sharegpt.jsonl

      swarm export --format parquet -o conversations.parquet

      swarm export --format openai --min-score support=0.8 --min-score persona=0.75 -o strict.jsonl
    """
    report = export(
        database(),
        output,
        fmt,
        run_id=run,
        where=where,
        dedup=dedup,
        threshold=threshold,
        variations=variations,
        system=system,
        include_partial=include_partial,
        include_all=include_all,
        min_scores=_min_scores(min_score or []),
    )
    parts = [f"{report.written} examples → {report.path} ({report.fmt})", f"{report.matched} conversations matched"]
    if dedup:
        parts.append(f"{report.near_duplicates} near-duplicates dropped")
    if report.variations:
        parts.append(f"{report.variations} from variations")
    if report.partial_left_out:
        parts.append(
            f"{report.partial_left_out} partial left out (--include-partial, or complete them: swarm run --resume)"
        )
    if report.failed_left_out:
        parts.append(f"{report.failed_left_out} that failed a blocking quality check left out (--all keeps them)")
    if report.unchecked_left_out:
        parts.append(f"{report.unchecked_left_out} not checked left out (swarm eval checks them; --all keeps them)")
    console.print("; ".join(parts), markup=False, soft_wrap=True)


def _min_scores(given: list[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in given:
        name, _, value = item.partition("=")
        try:
            score = float(value)
        except ValueError:
            score = -1.0
        if not name.strip() or not 0.0 <= score <= 1.0:
            raise ExportError(
                f"{{--min-score}} {item!r}: give CHECK=X with X from 0 to 1, for example {{--min-score}} support=0.8"
            )
        found[name.strip()] = score
    return found
