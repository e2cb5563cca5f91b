"""`swarm recipe list|show|check|kinds`: the recipes a run can follow."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from agents.cli.common import cli_errors, console, database, fail

app = typer.Typer(help="Recipes: the steps of a prompt cycle, in a file you can edit.", no_args_is_help=True)


@app.command("list")
@cli_errors
def recipe_list() -> None:
    """The recipes that ship with persona-swarm."""
    from agents.recipes import bundled, load

    table = Table("recipe", "steps", "description")
    for name in bundled():
        recipe = load(name)
        table.add_row(name, " → ".join(s.name for s in recipe.steps), recipe.spec.description)
    console.print(table)


@app.command("show")
@cli_errors
def show(
    recipe: Annotated[str, typer.Argument(help="A bundled recipe's name, or a recipe file.")] = "default",
    run: Annotated[str | None, typer.Option("--run", help="The recipe this run followed, as it stored it.")] = None,
) -> None:
    """Print a recipe's text: copy the default, edit it, run it with swarm run --recipe FILE.

    Example: swarm recipe show > mine.toml
    """
    from agents.recipes import default, load
    from agents.runs import RunStore

    if run is None:
        sys.stdout.write(load(recipe).text)
        return
    if recipe != "default":
        raise fail("give a recipe or --run, not both", 2)
    record = RunStore(database()).get(run)
    if record is None:
        raise fail(f"no run {run}: see swarm runs list")
    # as stored, without parsing it: a recipe whose step kind's package is gone can still be read
    sys.stdout.write(record.get("recipe") or default().text)


@app.command("check")
@cli_errors
def check(recipe: Annotated[str, typer.Argument(help="The recipe file (or a bundled name).")]) -> None:
    """Validate a recipe: every problem is listed with its line and field; exit 1 if there is one."""
    from agents.quality import language_problem
    from agents.recipes import load

    loaded = load(recipe)
    problem = language_problem(loaded.spec.language)
    if problem:
        raise fail(f"{loaded.source}: {problem}", 1)
    aliases = sorted(loaded.aliases())
    console.print(f"ok: {loaded.name} ({loaded.source}), recipe hash {loaded.hash}", markup=False)
    for step in loaded.steps:
        parts = ", ".join(f"{p.id} → {p.spec.model}" for p in step.prompts.values()) or "no prompt"
        console.print(f"  {step.name} ({step.spec.kind}): {parts}", markup=False, soft_wrap=True)
    console.print(f"model aliases: {', '.join(aliases)}", markup=False)


@app.command("kinds")
@cli_errors
def kinds() -> None:
    """The step kinds a recipe can use (packages add theirs through the persona_swarm.steps entry points)."""
    from agents.steps import STEP_KINDS

    table = Table("kind", "what it does")
    for name, kind in STEP_KINDS.items():
        summary = " ".join((kind.__doc__ or "").split())
        table.add_row(name, summary.split(". ")[0].rstrip(".") + ".")
    console.print(table)
