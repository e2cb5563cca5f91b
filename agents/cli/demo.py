"""`swarm demo`: the main job on embedded defaults, offline — bundled personas, the bundled sample
website (with its own search endpoint) on loopback, and the embedded local model."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from agents.cli.common import cli_errors, console, database, fail
from agents.cli.output import literal
from agents.cli.personas import _print_report
from agents.cli.run import exit_code

if TYPE_CHECKING:  # the swarm, the model and the site are imported by the command (~1 s)
    from agents.display import Display
from storage import Database


def sample_personas_path() -> Path:
    return Path(str(resources.files("persona_hub") / "data" / "sample_personas.jsonl"))


def _example(db: Database, run_id: str) -> dict[str, Any] | None:
    with db.read() as con:
        # the best by the quality checks: most checks passed, then the highest scores
        row = con.execute(
            "SELECT p.text, c.messages, c.sources, c.metadata, coalesce(q.passed, 0), coalesce(q.checks, 0) "
            "FROM conversations c JOIN personas p USING (persona_id) LEFT JOIN (SELECT conversation_id, "
            "count(*) FILTER (WHERE passed) AS passed, count(*) AS checks, sum(score) AS score FROM quality "
            "GROUP BY 1) q USING (conversation_id) WHERE c.run_id = ? ORDER BY 5 DESC, coalesce(q.score, 0) DESC, "
            "json_array_length(c.sources) DESC, c.conversation_id LIMIT 1",
            [run_id],
        ).fetchone()
    if row is None:
        return None
    return {"persona": row[0], "messages": json.loads(row[1]), "sources": json.loads(row[2]),
            "metadata": json.loads(row[3]) or {}, "passed": int(row[4]), "checks": int(row[5])}  # fmt: skip


def _show(db: Database, record: dict[str, Any]) -> None:
    run_id = record["run_id"]
    example = _example(db, run_id)
    if example is not None:
        passed, checks = example["passed"], example["checks"]
        verdict = "it passed every check" if passed == checks else f"it passed {passed} of {checks} checks"
        console.rule(f"[bold]The best conversation of the run: {verdict}")
        # the persona, the turns, the titles and the summary are a model's and the web's words: shown as text
        console.print(Text.assemble(("persona: ", "bold"), literal(example["persona"])), soft_wrap=True)
        for message in example["messages"][:4]:
            text = message["content"] if len(message["content"]) < 600 else message["content"][:600] + " …"
            console.print(Text.assemble((f"{message['role']}: ", "bold"), literal(text)), soft_wrap=True)
        for source in example["sources"]:
            console.print(literal(f"  [{source['n']}] {source['title']} — {source['url']}"), soft_wrap=True)
        meta = example["metadata"]
        console.print(
            Text.assemble(
                ("tags: ", "bold"),
                literal(", ".join(map(str, meta.get("tags", [])))),
                ("   sentiment: ", "bold"),
                literal(meta.get("sentiment")),
                ("\nsummary: ", "bold"),
                literal(meta.get("summary")),
            ),
            soft_wrap=True,
        )
    console.rule("[bold]Try")
    for example_command in (
        f"swarm query \"SELECT persona_id, termination_reason, json_extract_string(metadata, '$.summary') AS summary "
        f"FROM conversations WHERE run_id = '{run_id}'\"",
        f'swarm query "SELECT purpose, count(*) AS calls, round(avg(latency_ms)) AS avg_ms, sum(completion_tokens) '
        f"AS tokens FROM llm_calls WHERE run_id = '{run_id}' GROUP BY 1 ORDER BY 2 DESC\"",
        f"swarm query \"SELECT coalesce(error, 'ok') AS outcome, count(*) AS pages FROM pages WHERE run_id = "
        f"'{run_id}' GROUP BY 1\"",
        f"swarm eval --run {run_id}                 # the run's diversity (a minute)",
        f"swarm eval --run {run_id} --judge all     # the embedded model judges each conversation",
        f"swarm export --run {run_id} --format openai -o demo.jsonl   # those that pass the checks (--all: every one)",
        f"swarm runs show {run_id}",
    ):
        console.print(f"  {example_command}", soft_wrap=True, markup=False)


@cli_errors
def demo(
    personas: Annotated[int, typer.Option("-n", help="Personas in the demo run.")] = 8,
    turns: Annotated[int, typer.Option(help="User turns per conversation.")] = 2,
    concurrency: Annotated[int, typer.Option(help="Agents at once.")] = 4,
    resume: Annotated[str | None, typer.Option(help="Continue an interrupted demo run.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress; the summary at the end.")] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="Progress as JSON lines on stdout.")] = False,
) -> None:
    """The whole job offline: bundled personas, a bundled website searched and crawled on loopback, and
    the embedded local model writing conversations. A few minutes on 2 cores.

    Example:

      swarm demo
    """
    db = database()
    from agents.cli.run_display import JsonLinesDisplay, LiveDisplay, QuietDisplay
    from agents.launch import LOCAL, execute
    from agents.llm.local import LocalModel
    from agents.runs import RunConfig
    from agents.sample_site import SampleSite
    from crawler.search import SearXNG
    from persona_hub import import_files

    display: Display = JsonLinesDisplay() if json_lines else QuietDisplay() if quiet else LiveDisplay()
    console.rule("[bold]persona-swarm demo")
    console.print(f"Importing the bundled sample personas into {db.path} …")
    _print_report(import_files(db, [sample_personas_path()]), str(db.path))
    console.print("Starting the embedded model (SmolLM2-135M-Instruct on llama.cpp) and the sample website …")
    with LocalModel() as model, SampleSite() as site:
        console.print(f"  model {model.name} at {model.base_url}; site at {site.base} ({len(site.articles)} "
                      f"articles, {len(site.topics)} topics, sitemap, feed and SearXNG-style /search)")  # fmt: skip
        config = RunConfig(
            n=personas,
            seed=42,
            stratify_by="expertise",
            concurrency=concurrency,
            turns=turns,
            cycles=1,
            pages=3,
            search="searxng",
            results_per_query=3,
            search_rate=0,
            search_concurrency=4,
            allow_private=True,  # the sample site is on loopback
            host_rate=0,
            host_concurrency=4,
            render="never",
            base_url=LOCAL,
            model=model.name,
            llm_concurrency=2,
        )

        async def go() -> dict[str, Any]:
            search = SearXNG(site.base, rate=0, concurrency=4)  # the sample site's own search endpoint
            try:
                return await execute(db, config, display, resume=resume, local_model=model, search=search)
            finally:
                await search.aclose()

        record = asyncio.run(go())
    if record["status"] == "interrupted":
        raise fail(f"demo run {record['run_id']} interrupted; continue it with: swarm demo --resume {record['run_id']}",
                   exit_code(record))  # fmt: skip
    if record["status"] != "finished":
        raise fail(f"demo run {record['run_id']} {record['status']}: {record.get('error')}")
    _show(db, record)
