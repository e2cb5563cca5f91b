"""`swarm eval`'s judges against the LLM bound, and its checks over stored conversations.

A run of N personas is made first against a test LLM server that answers at once (the real swarm,
crawler and writer, on the local test site). Then `swarm eval --judge all` scores it against a second
test server that answers every request after exactly L seconds and takes at most C at once (the
judges' --concurrency and the client's limit). By Little's law the judges can finish at most C/L
requests a second, so the evaluation takes at least requests × L / C; the ratio of that bound to the
time it took is the figure (target ≥ 0.9). Both servers run in their own processes.

    python benchmarks/eval_speed.py                    # 200 personas, L = 0.5 s, C = 16
    python benchmarks/eval_speed.py --personas 400 --latency 0.25 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import tempfile
import threading
import time
from pathlib import Path

from agents import evaluate as ev
from agents.endpoints import open_models
from agents.llm import LLMSettings
from persona_hub import import_files
from storage import BatchWriter, Database

from swarm_speed import LLM_SERVER, SITE_SERVER, config_for, personas_file, run, serve  # isort: skip


async def judge(db: Database, run_id: str, port: int, concurrency: int) -> tuple[ev.EvalReport, float]:
    settings = dataclasses.replace(
        LLMSettings.from_env(), base_url=f"http://127.0.0.1:{port}/v1", model="bench-model", max_concurrency=concurrency
    )
    recipe, _ = ev.run_recipe(db, run_id)
    plan = ev.EvalPlan(run_id, judges=["all"], diversity=False, checks=False, concurrency=concurrency)
    async with contextlib.AsyncExitStack() as stack:
        writer = BatchWriter(db, on_conflict={"quality": "replace", "run_metrics": "replace"})
        stack.push_async_callback(asyncio.to_thread, writer.close)
        models = await open_models(stack, recipe, settings, db, writer, run_id=run_id, aliases={"default"})
        started = time.perf_counter()
        report = await ev.evaluate(db, plan, writer, models)
        return report, time.perf_counter() - started


def checks_rate(db: Database, run_id: str) -> tuple[int, float]:
    """The checks of every stored conversation again (their pages read back from the table), one core."""
    recipe, _ = ev.run_recipe(db, run_id)
    stored = ev.load(db, run_id)
    started = time.process_time()
    for item in stored:
        ev.check(item, recipe, force=True)
    return len(stored), time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--personas", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        site, site_port = serve(SITE_SERVER)
        fast, fast_port = serve(LLM_SERVER, "0")
        slow, slow_port = serve(LLM_SERVER, str(args.latency))
        try:
            db = Database(workdir / "eval.duckdb")
            import_files(db, [personas_file(workdir / "personas.jsonl", args.personas)])
            record, made_in, _, _ = run(db, config_for(fast_port, site_port, args.personas, 64, 64), args.personas)
            run_id = record["run_id"]
            report, elapsed = asyncio.run(judge(db, run_id, slow_port, args.concurrency))
            with db.read() as con:
                requests = con.execute(
                    "SELECT count(*) FROM llm_calls WHERE run_id = ? AND NOT cached AND purpose IN "
                    "('grounding', 'persona', 'helpfulness')",
                    [run_id],
                ).fetchone()[0]
            conversations, cpu = checks_rate(db, run_id)
        finally:
            for process in (site, fast, slow):
                process.terminate()
    bound = requests * args.latency / args.concurrency
    judged = sum(report.judged.values())
    print(f"eval: a run of {args.personas} personas ({report.conversations} conversations, made in {made_in:.0f} s); "
          f"judges at L = {args.latency} s, C = {args.concurrency}")  # fmt: skip
    print(f"  {judged} judgements ({dict(report.judged)}; failed {sum(report.failed.values())}) in {elapsed:.1f} s, "
          f"{requests} requests")  # fmt: skip
    print(f"  bound requests·L/C: {bound:.1f} s → ratio {bound / elapsed:.3f} (target ≥ 0.9)")
    print(f"  checks over the stored conversations (pages read back from the table): {conversations / cpu:,.0f} "
          f"conversations/s of CPU, one core")  # fmt: skip


if __name__ == "__main__":
    threading.excepthook = lambda hook: None  # the servers' threads die with their processes
    main()
