"""The web view's page latency on a large database.

Builds (once, kept in benchmarks/.data/) a database of 1,000,000 personas (imported by `swarm personas
import` from a generated JSONL file), one run of 100,000 conversations of 8 turns with their quality
rows (6 checks and 3 judges each), 400,000 LLM calls and 200,000 pages, then starts `swarm serve` on it
and asks, one request at a time as a person clicking would, for:

  - the conversations list with two facets chosen (a theme and a sentiment), page 1 and a later page,
    as a person browsing asks for it (the list's rows worked out once, then kept while the file is
    unchanged), and each request after a write to the file (the rows worked out again);
  - a persona's page;
  - the run's page (its figures are counted from the tables on every request);
  - the persona list with a facet, the pages list with a facet, and a run chart (drawn, then cached).

Prints the 50th and 95th percentiles of each against the issue's bounds (conversations list and
persona page under 300 ms at p95, run page under 500 ms), with the database's size.

    python benchmarks/web_speed.py                    # 40 requests an endpoint
    python benchmarks/web_speed.py --requests 20 --rebuild
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
SWARM = Path(sys.executable).parent / "swarm"
PERSONAS, CONVERSATIONS, PAGES = 1_000_000, 100_000, 200_000
RUN_ID = "run_20261207T000000_bench0"
THEMES = [
    "sleep",
    "cooking",
    "cycling",
    "astronomy",
    "gardening",
    "money",
    "music",
    "birds",
    "health",
    "travel",
    "chess",
    "bees",
    "woodwork",
    "history",
    "physics",
    "poetry",
    "running",
    "language",
    "pets",
    "weather",
]
SENTIMENTS = ["positive", "neutral", "negative", "mixed"]
OCCUPATIONS = ["nurse", "welder", "teacher", "chef", "pilot", "farmer", "lawyer", "barista", "plumber", "librarian"]
COUNTRIES = ["Kenya", "Brazil", "Japan", "Canada", "India", "Germany", "Mexico", "Norway", "Vietnam", "Ghana"]
CHECKS = ["citations", "support", "echo", "degenerate", "language", "metadata"]
JUDGES = ["grounding_recall", "persona", "helpfulness"]


def _list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v + "'" for v in values) + "]"


def build(path: Path) -> None:
    """The database: personas through the real import, the run's rows through SQL (DuckDB makes them in
    seconds; a real run of this size would take days of model time)."""
    if path.exists():
        path.unlink()
    DATA.mkdir(exist_ok=True)
    jsonl = DATA / "web_personas.jsonl"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT 'bp-' || i AS id, 'A ' || (18 + i % 67) || '-year-old ' || {_list(OCCUPATIONS)}[1 + i % 10] "
        f"|| ' from ' || {_list(COUNTRIES)}[1 + (i // 10) % 10] || ' (#' || i || ') who reads about ' || "
        f"{_list(THEMES)}[1 + (i * 7) % 20] || ' on weekends.' AS persona, {_list(OCCUPATIONS)}[1 + i % 10] AS "
        f"occupation, 18 + i % 67 AS age, {_list(COUNTRIES)}[1 + (i // 10) % 10] AS country FROM range({PERSONAS}) "
        f"t(i)) TO '{jsonl}' (FORMAT json)"
    )
    con.close()
    started = time.monotonic()
    subprocess.run(
        [str(SWARM), "--db", str(path), "personas", "import", str(jsonl)],
        check=True,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    print(f"  imported {PERSONAS:,} personas in {time.monotonic() - started:.1f} s")
    jsonl.unlink()
    con = duckdb.connect(str(path))
    turn = "repeat('word ', 60)"
    con.execute(
        "INSERT INTO runs (run_id, status, config, started_at, finished_at, updated_at, counts, personas, "
        "conversations, failed_units, pages_ok, pages_failed, llm_calls, prompt_tokens, completion_tokens, cost_usd, "
        "elapsed_s, sessions, pid, hostname) VALUES (?, 'finished', '{\"turns\": 4}', now() - INTERVAL 2 DAY, now(), "
        "now(), '{}', ?, ?, 0, ?, 0, ?, 0, 0, 0, 172800, 1, 1, 'bench')",
        [RUN_ID, CONVERSATIONS, CONVERSATIONS, PAGES, 4 * CONVERSATIONS],
    )
    con.execute(f"INSERT INTO run_personas SELECT '{RUN_ID}', i, 'bp-' || (i * 9) FROM range({CONVERSATIONS}) t(i)")
    con.execute(
        f"INSERT INTO pages (page_id, run_id, url, final_url, host, depth, status, content_type, fetched_at, "
        f"elapsed_ms, attempts, bytes, rendered, title, text, error) SELECT 'pg_' || i, '{RUN_ID}', "
        f"'https://host' || (i % 200) || '.example/a/' || i, NULL, 'host' || (i % 200) || '.example', 1, "
        f"CASE WHEN i % 10 = 0 THEN 404 ELSE 200 END, 'text/html', now() - INTERVAL (i) SECOND, 120, 1, 2000, false, "
        f"'Article ' || i, repeat('Text of the page. ', 60), CASE WHEN i % 10 = 0 THEN 'http_404' END "
        f"FROM range({PAGES}) t(i)"
    )
    messages = (
        "json_array("
        + ", ".join(
            f"json_object('role', '{'user' if k % 2 == 0 else 'assistant'}', 'content', "
            f"'Turn {k} of ' || i || ' ' || {turn} || '[1].')"
            for k in range(8)
        )
        + ")"
    )
    con.execute(
        f"INSERT INTO conversations (conversation_id, run_id, persona_id, cycle, messages, sources, metadata, "
        f"queries, termination_reason, created_at, status, recipe_hash, outputs) SELECT 'cv_' || i, '{RUN_ID}', "
        f"'bp-' || (i * 9), 0, {messages}, json_array(json_object('n', 1, 'page_id', 'pg_' || (i * 2), 'url', "
        f"'https://x', 'title', 'Article')), json_object('theme', {_list(THEMES)}[1 + i % 20], 'sentiment', "
        f"{_list(SENTIMENTS)}[1 + (i // 20) % 4], 'tags', json_array({_list(THEMES)}[1 + (i * 3) % 20], "
        f"{_list(THEMES)}[1 + (i * 11) % 20]), 'summary', 'A summary.'), '[]', 'turns_reached', "
        f"now() - INTERVAL 2 DAY + INTERVAL (i) SECOND, 'complete', 'bench', json_object('read', json_object("
        f"'sources', json_array(json_object('n', 1, 'page_id', 'pg_' || (i * 2))))) FROM range({CONVERSATIONS}) t(i)"
    )
    names = CHECKS + JUDGES
    con.execute(
        f"INSERT INTO quality SELECT 'cv_' || i, '{RUN_ID}', n.name, (hash(i, n.name) % 100) / 100.0, "
        f"(hash(i, n.name) % 100) >= 20, list_contains({_list(CHECKS)}, n.name), 'detail', now() "
        f"FROM range({CONVERSATIONS}) t(i), unnest({_list(names)}) n(name)"
    )
    con.execute(
        f"INSERT INTO llm_calls (call_id, run_id, purpose, model, endpoint, mode, prompt_tokens, completion_tokens, "
        f"latency_ms, attempts, status, cached, cost_usd, created_at) SELECT 'llm_' || i, '{RUN_ID}', "
        f"['interests', 'conversation.user', 'conversation.assistant', 'metadata'][1 + i % 4], 'bench', "
        f"'http://127.0.0.1:1/v1', 'text', 500, 120, 200 + (hash(i) % 3000), 1, 'ok', false, 0, "
        f"now() - INTERVAL 2 DAY + INTERVAL (i // 4) SECOND FROM range({4 * CONVERSATIONS}) t(i)"
    )
    con.execute("CHECKPOINT")
    con.close()


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        started = time.perf_counter()
        answer = client.get(path)
        out.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code} {answer.text[:300]}")
    return out


def timed_after_writes(client: httpx.Client, paths: list[str], db: Path) -> list[float]:
    """As timed(), each request after the database file changed (as a run's write changes it): the
    view's kept lists do not hold, and the rows are worked out again."""
    out = []
    for path in paths:
        os.utime(db)
        out += timed(client, [path])
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40, help="requests an endpoint")
    parser.add_argument("--rebuild", action="store_true", help="make the database again")
    args = parser.parse_args()
    path = DATA / "web_bench.duckdb"
    if args.rebuild or not path.exists():
        print(f"building {path} …")
        started = time.monotonic()
        build(path)
        print(f"  built in {time.monotonic() - started:.0f} s")
    size = path.stat().st_size
    rng = random.Random(7)
    n = args.requests
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [str(SWARM), "--db", str(path), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        try:
            assert server.stdout is not None
            base = re.search(r"http://[^\s/]+", server.stdout.readline())
            if not base:
                raise SystemExit("swarm serve did not start")
            with httpx.Client(base_url=base.group(0), timeout=60) as client:
                client.get("/")  # the first connection, the renderer's start
                client.get(f"/runs/{RUN_ID}/charts/conversations.svg")
                lists = [
                    f"/conversations?theme={rng.choice(THEMES)}&sentiment={rng.choice(SENTIMENTS)}"
                    + (f"&page={rng.randint(2, 20)}" if i % 2 else "")
                    for i in range(n)
                ]
                figures = {
                    "conversations, two facets": (timed(client, lists), 0.300),
                    "… each after a write": (timed_after_writes(client, lists, path), 0.300),
                    "persona page": (
                        timed(client, [f"/personas/bp-{rng.randrange(PERSONAS)}" for _ in range(n)]),
                        0.300,
                    ),
                    "run page": (timed(client, [f"/runs/{RUN_ID}"] * n), 0.500),
                    "personas, one facet": (
                        timed(client, [f"/personas?persona.occupation={rng.choice(OCCUPATIONS)}" for _ in range(n)]),
                        None,
                    ),
                    "pages, one facet": (
                        timed(client, [f"/pages?outcome=http_404&page={i + 1}" for i in range(n)]),
                        None,
                    ),
                    "a chart, drawn once then kept": (timed(client, [f"/runs/{RUN_ID}/charts/latency.svg"] * n), None),
                }
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"swarm serve over {size / 2**20:,.0f} MB: {PERSONAS:,} personas, {CONVERSATIONS:,} conversations "
        f"(one run), {PAGES:,} pages, {4 * CONVERSATIONS:,} LLM calls; {n} requests each, one at a time"
    )
    for name, (values, bound) in figures.items():
        verdict = (
            ""
            if bound is None
            else f"  (p95 bound {bound * 1000:.0f} ms: {'met' if p95(values) <= bound else 'NOT met'})"
        )
        print(f"  {name:<32} p50 {statistics.median(values) * 1000:6.0f} ms  p95 {p95(values) * 1000:6.0f} ms{verdict}")


if __name__ == "__main__":
    main()
