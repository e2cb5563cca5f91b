"""`swarm demo`: the main job on embedded defaults, offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from agents.cli.common import cli_errors, console, database
from agents.cli.personas import _print_report
from persona_hub import import_files, sample


def sample_personas_path() -> Path:
    return Path(str(resources.files("persona_hub") / "data" / "sample_personas.jsonl"))


@cli_errors
def demo() -> None:
    """Seed the hub with the bundled sample personas and show what you can do with it.

    Runs offline on a fresh machine. Example:

      swarm demo
    """
    db = database()
    console.rule("[bold]persona-swarm demo")
    console.print(f"Importing the bundled sample personas into {db.path} …")
    _print_report(import_files(db, [sample_personas_path()]), str(db.path))
    drawn = sample(db, 8, seed=42, stratify_by="expertise")
    console.print("\n[bold]A reproducible sample (seed 42), stratified by expertise:[/bold]")
    for row in drawn.rows:
        console.print(f"  • [cyan]{row['persona_id']}[/cyan] ({row['expertise']}) {row['text']}", soft_wrap=True)
    console.print("\n[bold]Try:[/bold]")
    for example in (
        'swarm query "SELECT occupation, age, country FROM personas_flat ORDER BY age DESC LIMIT 5"',
        'swarm query "SELECT t AS topic, count(*) AS personas FROM (SELECT unnest(topics) AS t '
        'FROM personas_flat) GROUP BY 1 ORDER BY 2 DESC"',
        "swarm personas sample -n 5 --where \"list_contains(topics, 'astronomy')\" --seed 1",
    ):
        console.print(f"  {example}", soft_wrap=True, markup=False)
