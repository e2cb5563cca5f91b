"""`swarm export`: conversations as training-ready files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agents.cli.common import cli_errors, console, database
from agents.export import EXPORT_COLUMNS, EXPORT_FORMATS, export


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
    include_partial: Annotated[
        bool,
        typer.Option(
            "--include-partial", help="Also conversations whose metadata or variations step failed (status partial)."
        ),
    ] = False,
) -> None:
    """Write conversations for fine-tuning: OpenAI chat JSONL, ShareGPT JSONL, or Parquet with metadata.

    Examples:

      swarm export --run run_20261126T101500_a1b2c3 --format openai -o train.jsonl

      swarm export --format sharegpt --where "sentiment <> 'negative' AND turns >= 2" --dedup -o sharegpt.jsonl

      swarm export --format parquet -o conversations.parquet
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
    console.print("; ".join(parts), markup=False, soft_wrap=True)
