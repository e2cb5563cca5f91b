"""Swarm throughput against the LLM bound, and memory over a long run.

1. Throughput: the test LLM server answers every request after exactly L seconds and takes at most C at
   once (our limiter's --llm-concurrency), so by Little's law the LLM can finish at most C/L calls a
   second, and conversations/s can be at most C / (L × LLM requests per conversation). The run uses the
   real scheduler, crawler (search + fetch + extraction on the local test site), cache, writer and
   limiter; requests per conversation are counted from llm_calls (cached calls cost no request).
2. Memory: N personas (default 10,000) at concurrency 64 with a short L; the process's resident memory is
   sampled every 0.5 s and printed at each quarter of the run, with the peak.

Both servers run in their own processes so they never compete for our GIL.

    python benchmarks/swarm_speed.py                         # both parts
    python benchmarks/swarm_speed.py --part throughput --latency 0.5 --llm-concurrency 16 --personas 256
    python benchmarks/swarm_speed.py --part memory --memory-personas 10000
    python benchmarks/swarm_speed.py --part throughput --recipe attributes   # another recipe

3. Side by side (`--vs DIR`): the throughput part of this checkout and of another one (a `git worktree`
   of an earlier commit, say), each run in its own process with its own code, alternating for
   `--rounds` rounds; prints both ratios to the bound and their difference (medians over the rounds).

    git worktree add /tmp/before c5d263d
    python benchmarks/swarm_speed.py --vs /tmp/before --rounds 2

4. Checks on and off (`--part checks`): the throughput part with the inline quality checks and with
   `--no-checks`, alternating the same way; prints both ratios and the CPU this process spent a
   conversation, and the checks' share of it.

    python benchmarks/swarm_speed.py --part checks --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agents import cycle
from agents.launch import execute
from agents.runs import RunConfig
from agents.swarm import Swarm
from persona_hub import import_files
from storage import Database

ROOT = Path(__file__).resolve().parent.parent  # the servers' scripts run here: `-c` finds tests.support

LLM_SERVER = """
import sys
from tests.support.llm_server import LLMServer
server = LLMServer(latency=float(sys.argv[1])).start()
print(server.port, flush=True)
sys.stdin.read()
"""
SITE_SERVER = """
import sys
from tests.support.site_server import Site
site = Site(robots="User-agent: *\\nAllow: /\\n", articles=60).start()
print(site.port, flush=True)
sys.stdin.read()
"""
TOPICS = ["gardening", "cycling", "cooking", "astronomy", "personal finance", "woodworking", "birdwatching",
          "sleep and health", "programming", "music history"]  # fmt: skip


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def serve(script: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def personas_file(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            topic = TOPICS[i % len(TOPICS)]
            text = (
                f"Persona {i}: someone who follows {topic} closely and reads about it every week ({i * 7919 % 1000})."
            )
            fh.write(json.dumps({"id": f"b{i:06d}", "persona": text, "topic": topic}) + "\n")
    return path


class Quiet:
    """A display that records progress instead of drawing it."""

    def __init__(self, n: int) -> None:
        self.n, self.samples, self.marks = n, [], {}
        self.swarm: Swarm | None = None
        self.swarm_started = self.swarm_ended = 0.0

    def started(self, run_id: str, swarm: Swarm, resumed: bool) -> None:
        self.swarm, self.swarm_started = swarm, time.perf_counter()

    def tick(self, swarm: Swarm) -> None:
        mb = rss_mb()
        self.samples.append(mb)
        done = swarm.progress.personas_done
        for quarter in (25, 50, 75):
            if done >= self.n * quarter / 100 and quarter not in self.marks:
                self.marks[quarter] = mb

    def stopping(self, swarm: Swarm, second: bool) -> None:
        pass

    def finished(self, record: dict[str, Any]) -> None:
        self.swarm_ended = time.perf_counter()
        self.marks[100] = rss_mb()


def run(db: Database, config: RunConfig, n: int) -> tuple[dict[str, Any], float, Quiet, float]:
    """The run's record, its wall time, its display and the CPU seconds this process spent on it."""
    display = Quiet(n)
    started, cpu = time.perf_counter(), time.process_time()
    record = asyncio.run(execute(db, config, display))
    return record, time.perf_counter() - started, display, time.process_time() - cpu


def config_for(
    llm_port: int,
    site_port: int,
    n: int,
    agents: int,
    llm_concurrency: int,
    recipe: str | None = None,
    checks: bool = True,
) -> RunConfig:
    os.environ.update(
        SEARXNG_URL=f"http://127.0.0.1:{site_port}",
        OPENAI_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        OPENAI_API_KEY="bench",
    )
    return RunConfig(
        n=n,
        concurrency=agents,
        turns=1,
        cycles=1,
        pages=3,
        search="searxng",
        search_rate=0,
        search_concurrency=8,
        results_per_query=3,
        allow_private=True,
        host_rate=0,
        host_concurrency=8,
        render="never",
        model="bench-model",
        llm_concurrency=llm_concurrency,
        recipe=recipe,
        checks=checks,
    )


class CheckTime:
    """The CPU the inline quality checks take, on the thread that runs them (the event loop's)."""

    def __init__(self) -> None:
        self.seconds, self.calls = 0.0, 0
        self.check = cycle.quality.check
        cycle.quality.check = self  # type: ignore[assignment]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return self.check(*args, **kwargs)
        finally:
            self.seconds += time.thread_time() - started
            self.calls += 1


def throughput(args: argparse.Namespace, workdir: Path, llm_port: int, site_port: int) -> None:
    db = Database(workdir / "throughput.duckdb")
    import_files(db, [personas_file(workdir / "personas.jsonl", args.personas)])
    config = config_for(
        llm_port, site_port, args.personas, args.agents, args.llm_concurrency, args.recipe, not args.no_checks
    )
    checks = CheckTime()
    record, elapsed, display, cpu = run(db, config, args.personas)
    swarm_s = display.swarm_ended - display.swarm_started
    counts = record["counts"]
    requests = counts["llm_calls"] - counts["llm_calls_cached"]
    conversations = counts["conversations"]
    per_conversation = requests / max(1, conversations)
    bound = args.llm_concurrency / (args.latency * per_conversation)
    rate = conversations / elapsed
    steady = conversations / swarm_s
    print(f"throughput: {args.personas} personas, {args.agents} agents, LLM at L = {args.latency} s, C = "
          f"{args.llm_concurrency}, recipe {args.recipe or 'default'}, checks "
          f"{'off' if args.no_checks else 'on'}")  # fmt: skip
    print(f"  {conversations} conversations in {elapsed:.1f} s (setup and the final flush included); "
          f"{counts['units_failed']} failed; {counts['pages_ok']} pages read")  # fmt: skip
    print(f"  LLM requests per conversation: {per_conversation:.2f} ({counts['llm_calls_cached']} more calls "
          f"answered from the cache)")  # fmt: skip
    print(f"  bound C/(L·requests): {bound:.2f} conversations/s")
    print(f"  conversations/s, start to end of the run (pool start, final flush and counts included): "
          f"{rate:.2f} → ratio {rate / bound:.3f} (target ≥ 0.85)")  # fmt: skip
    print(f"  conversations/s, agents working ({swarm_s:.1f} s): "
          f"{steady:.2f} → ratio {steady / bound:.3f}")  # fmt: skip
    print(f"  CPU of this process: {cpu:.1f} s, {cpu / max(1, conversations) * 1000:.1f} ms a conversation")
    if checks.calls:
        print(f"  the quality checks themselves: {checks.seconds / checks.calls * 1000:.2f} ms a conversation, "
              f"{checks.seconds / cpu * 100:.1f} % of the process's CPU (target < 2 %)")  # fmt: skip


def memory(args: argparse.Namespace, workdir: Path, llm_port: int, site_port: int) -> None:
    db = Database(workdir / "memory.duckdb")
    import_files(db, [personas_file(workdir / "many.jsonl", args.memory_personas)])
    config = config_for(llm_port, site_port, args.memory_personas, 64, 64)
    base = rss_mb()
    record, elapsed, display, _ = run(db, config, args.memory_personas)
    counts = record["counts"]
    peak = max(display.samples or [0.0])
    marks = ", ".join(f"{q}%: {mb:.0f} MB" for q, mb in sorted(display.marks.items()))
    print(f"memory: {args.memory_personas} personas, concurrency 64, LLM at L = {args.memory_latency} s")
    print(f"  {counts['conversations']} conversations in {elapsed:.0f} s; {counts['units_failed']} failed")
    print(f"  resident memory before the run {base:.0f} MB; at {marks}; peak {peak:.0f} MB (target < 500 MB)")


_CHECKS = re.compile(r"the quality checks themselves: .*?, ([0-9.]+) % of the process")
_RATIOS = re.compile(
    # the CPU line is newer than some checkouts --vs compares with
    r"start to end of the run.*?ratio ([0-9.]+).*?agents working.*?ratio ([0-9.]+)"
    r"(?:.*?, ([0-9.]+) ms a conversation)?",
    re.S,
)


def side_by_side(args: argparse.Namespace, variants: dict[str, tuple[Path, list[str]]]) -> None:
    """The throughput part of each variant (a checkout and its extra flags), alternating, each in its own
    process; the first variant is compared with the second."""
    flags = ["--part", "throughput", "--latency", str(args.latency), "--llm-concurrency", str(args.llm_concurrency),
             "--agents", str(args.agents), "--personas", str(args.personas)]  # fmt: skip
    found: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    checks: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(args.rounds):
        for name, (root, extra) in variants.items():
            done = subprocess.run(
                [sys.executable, str(root / "benchmarks" / "swarm_speed.py"), *flags, *extra],
                capture_output=True,
                text=True,
                cwd=root,
                env={**os.environ, "PYTHONPATH": str(root)},  # its own code, not this checkout's install
            )
            match = _RATIOS.search(done.stdout)
            if done.returncode or not match:
                sys.exit(f"{name}: the benchmark failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-2000:]}")
            found[name].append((float(match[1]), float(match[2]), float(match[3] or "nan")))
            own = _CHECKS.search(done.stdout)
            if own:
                checks[name].append(float(own[1]))
            shown = f", the checks' own {own[1]} %" if own else ""
            print(f"round {round_number + 1}, {name}: ratio {match[1]} (run), {match[2]} (agents working), "
                  f"CPU {match[3]} ms a conversation{shown}", flush=True)  # fmt: skip
    print(f"side by side, medians of {args.rounds} round(s), L = {args.latency} s, C = {args.llm_concurrency}:")
    (first, second) = list(variants)
    mine, theirs = (tuple(statistics.median(r[i] for r in found[name]) for i in (0, 1, 2)) for name in (first, second))
    for i, label in enumerate(["start to end of the run", "agents working"]):
        change = (mine[i] / theirs[i] - 1) * 100
        print(f"  {label}: {first} {mine[i]:.3f} | {second} {theirs[i]:.3f} | {change:+.1f} % (bound: within 3 %)")
    share = (mine[2] - theirs[2]) / mine[2] * 100
    print(f"  CPU a conversation: {first} {mine[2]:.1f} ms | {second} {theirs[2]:.1f} ms | the difference is "
          f"{share:+.1f} % of {first}'s")  # fmt: skip
    for name, shares in checks.items():
        if shares:
            print(f"  {name}: the checks' own CPU, median {statistics.median(shares):.1f} % of the process's (< 2 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["throughput", "memory", "both", "checks"], default="both")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--llm-concurrency", type=int, default=16)
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--personas", type=int, default=400)
    parser.add_argument("--memory-personas", type=int, default=10_000)
    parser.add_argument("--memory-latency", type=float, default=0.05)
    parser.add_argument("--recipe", help="a bundled recipe's name or a recipe file (default: the default recipe)")
    parser.add_argument("--vs", help="another checkout to run side by side with this one (throughput only)")
    parser.add_argument("--rounds", type=int, default=1, help="with --vs: alternating rounds (medians are shown)")
    parser.add_argument("--no-checks", action="store_true", help="the run without its inline quality checks")
    args = parser.parse_args()
    recipe = ["--recipe", args.recipe] if args.recipe else []
    if args.vs:
        side_by_side(args, {"this checkout": (ROOT, recipe), args.vs: (Path(args.vs).resolve(), [])})
        return
    if args.part == "checks":
        side_by_side(args, {"checks on": (ROOT, recipe), "checks off": (ROOT, [*recipe, "--no-checks"])})
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        site, site_port = serve(SITE_SERVER)
        try:
            if args.part in ("throughput", "both"):
                llm, llm_port = serve(LLM_SERVER, str(args.latency))
                try:
                    throughput(args, workdir, llm_port, site_port)
                finally:
                    llm.terminate()
            if args.part in ("memory", "both"):
                llm, llm_port = serve(LLM_SERVER, str(args.memory_latency))
                try:
                    memory(args, workdir, llm_port, site_port)
                finally:
                    llm.terminate()
        finally:
            site.terminate()


if __name__ == "__main__":
    threading.excepthook = lambda hook: None  # the servers' threads die with their processes
    main()
