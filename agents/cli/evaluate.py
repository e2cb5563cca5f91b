"""`swarm eval`: score a run's stored conversations — the checks, the judges, the diversity figures."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import replace
from typing import Annotated, Any

import typer

from agents.cli.common import cli_errors, console, database, err_console


@cli_errors
def evaluate_command(
    run: Annotated[str | None, typer.Option("--run", help="The run to score (default: the latest).")] = None,
    judge: Annotated[
        list[str] | None,
        typer.Option(
            "--judge",
            help="A judge step to run (repeatable; 'all' for every one): grounding, persona, helpfulness in the "
            "default recipe.",
            show_default=False,
        ),
    ] = None,
    judges_from: Annotated[
        str | None,
        typer.Option(
            help="Take the judges from this recipe (file or bundled name), not the run's.", show_default=False
        ),
    ] = None,
    checks: Annotated[bool, typer.Option("--checks/--no-checks", help="Run the checks a conversation lacks.")] = True,
    diversity: Annotated[
        bool, typer.Option("--diversity/--no-diversity", help="Measure the run's diversity (distinct-n, …).")
    ] = True,
    embeddings: Annotated[
        bool,
        typer.Option("--embeddings/--no-embeddings", help="Diversity from /v1/embeddings too (Vendi score, …)."),
    ] = True,
    by: Annotated[
        str | None,
        typer.Option(
            help="Persona attribute whose values get their own diversity figures (default: the run's --stratify-by).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Score again what is already scored.")] = False,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="The judges' endpoint (default: the run's; 'local' for the embedded model).", show_default=False
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="The judges' model (default: the run's).", show_default=False)
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Judge calls at once.")] = 16,
) -> None:
    """Score a run's stored conversations, regenerating nothing: the quality checks they lack, the judge
    steps asked for (a model's opinion), and the run's diversity. What is already scored is kept, so an
    interrupted eval goes on where it stopped when run again (--force scores everything again).

    Examples:

      swarm eval                                   # the latest run: checks and diversity

      swarm eval --run run_20261207T101500_a1b2c3 --judge grounding --judge persona

      swarm eval --judge all --base-url http://localhost:8000/v1 --model qwen2.5-7b-instruct
    """
    from agents import evaluate as ev
    from agents import recipes

    db = database()
    run_id = run or ev.latest_run(db)
    recipe, config = ev.run_recipe(db, run_id)
    plan = ev.EvalPlan(
        run_id,
        judges=list(judge or []),
        judges_from=recipes.load(judges_from) if judges_from else None,
        checks=checks,
        diversity=diversity,
        by=by or config.get("stratify_by"),
        force=force,
        concurrency=concurrency,
    )
    steps = ev.judge_steps(plan, recipe) if plan.judges else []  # an unknown judge stops here
    endpoint = base_url or config.get("base_url")
    try:
        report = asyncio.run(_evaluate(db, plan, steps, recipe, endpoint, model or config.get("model"), embeddings))
    except KeyboardInterrupt:
        err_console.print("interrupted: what was scored is saved; the same command goes on from there", markup=False)
        raise typer.Exit(130) from None
    _print(db, report, [s.name for s in steps])


async def _evaluate(
    db: Any, plan: Any, steps: list[Any], recipe: Any, endpoint: str | None, model: str | None, embeddings: bool
) -> Any:
    from agents import evaluate as ev
    from agents.llm.embeddings import embed
    from agents.llm.errors import LLMUnavailable, Status
    from agents.llm.local import LocalModelUnavailable
    from agents.runs import RunStore
    from storage import BatchWriter

    needs_model = bool(steps) or (plan.diversity and embeddings)
    async with contextlib.AsyncExitStack() as stack:
        writer = BatchWriter(db, on_conflict={"quality": "replace", "run_metrics": "replace"})
        stack.push_async_callback(asyncio.to_thread, writer.close)
        models: dict[str, Any] = {}
        down: LLMUnavailable | None = None
        if needs_model:
            try:
                models = await _models(stack, db, writer, plan, steps, recipe, endpoint, model)
            except (LLMUnavailable, LocalModelUnavailable) as exc:
                if steps:
                    raise
                # only the embeddings needed it: the checks and the lexical figures go on
                down = exc if isinstance(exc, LLMUnavailable) else LLMUnavailable(str(exc), Status.UNAVAILABLE)
        vectors: Any = None
        if plan.diversity and embeddings:
            vectors = functools.partial(embed, models["default"]) if models else functools.partial(_down, down)
        if steps:
            console.print(f"judging run {plan.run_id} with {', '.join(s.name for s in steps)} "
                          f"({models['default'].settings.model} at {models['default'].settings.endpoint})",
                          markup=False, soft_wrap=True)  # fmt: skip
        report = await ev.evaluate(db, plan, writer, models, embed=vectors)
    await asyncio.to_thread(RunStore(db).refresh_counts, plan.run_id)
    return report


async def _models(
    stack: contextlib.AsyncExitStack,
    db: Any,
    writer: Any,
    plan: Any,
    steps: list[Any],
    recipe: Any,
    endpoint: str | None,
    model: str | None,
) -> dict[str, Any]:
    """The clients of the judges' model aliases ("default" among them: the embeddings' too), on the
    run's endpoint unless told otherwise; the embedded model is started again, serving embeddings too."""
    from agents.endpoints import open_models
    from agents.llm import LLMSettings
    from agents.llm.local import LocalModel
    from agents.session import LOCAL

    settings = LLMSettings.from_env()
    if endpoint in (None, LOCAL) and (endpoint == LOCAL or not settings.api_key):
        local = LocalModel(embedding=True)
        stack.push_async_callback(asyncio.to_thread, local.stop)
        await asyncio.to_thread(local.start)
        settings = replace(settings, base_url=local.base_url, api_key="local", model=local.name, max_concurrency=1)
    else:
        settings = replace(settings, base_url=endpoint or settings.base_url, model=model or settings.model,
                           max_concurrency=plan.concurrency)  # fmt: skip
    aliases = {"default"} | {p.spec.model for step in steps for p in step.prompts.values()}
    source = plan.judges_from or recipe
    return await open_models(stack, source, settings, db, writer, run_id=plan.run_id, aliases=aliases)


async def _down(error: Any, texts: list[str]) -> list[list[float]]:
    raise error


def _print(db: Any, report: Any, judges: list[str]) -> None:
    from agents.cli.run_display import summary_table
    from agents.runs import RunStore

    line = f"run {report.run_id}: {report.conversations} conversations; checks run on {report.checked}"
    if report.without_pages:
        line += f" ({report.without_pages} without a record of their pages: citations and support left as they were)"
    console.print(line, markup=False, soft_wrap=True)
    for name in judges:
        failed = {k.split(": ", 1)[1]: v for k, v in report.failed.items() if k.startswith(f"{name}: ")}
        shown = f"judge {name}: {report.judged[name]} judged now, {report.already[name]} already judged"
        if failed:
            shown += "; failed: " + ", ".join(f"{reason} {n}" for reason, n in failed.items())
            shown += " (run the same command again to retry them)"
        console.print(shown, markup=False, soft_wrap=True)
    if report.figures and report.by and len(report.figures) == 1:
        console.print(f"  no conversation's persona has a value for {report.by!r}: no strata", markup=False)
    for stratum, figures in report.figures.items():
        if stratum:
            shown = ", ".join(f"{f.metric} {f.value:.3f}" for f in figures if f.value is not None)
            console.print(f"  {stratum} ({figures[0].n} conversations): {shown}", markup=False, soft_wrap=True)
    for f in report.figures.get("", []):
        if f.value is None:
            console.print(f"  {f.metric}: not worked out ({f.detail})", markup=False, soft_wrap=True)
    record = RunStore(db).get(report.run_id)
    if record is not None:
        console.print(summary_table(record))
