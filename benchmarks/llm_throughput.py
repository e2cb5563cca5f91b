"""LLM layer throughput: calls/s against an OpenAI-compatible server with a fixed latency L, at
concurrency C, against the bound C/L (Little's law), and our overhead per call.

The server (tests/support/llm_server.py, in another process so it never competes for our GIL) answers every
request after exactly L seconds. Every call goes through the whole layer — cache lookup (a miss),
limiter, the real openai client, and a row in llm_calls.

    python benchmarks/llm_throughput.py                  # L = 0.5 s, C = 32, 640 calls
    python benchmarks/llm_throughput.py --latency 0.2 --concurrency 16 --calls 480
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agents.llm import LLMClient, LLMSettings
from storage import BatchWriter, Database

ROOT = Path(__file__).resolve().parent.parent  # the server's script runs here: `-c` finds tests.support

SERVER = """
import sys, time
from tests.support.llm_server import LLMServer
server = LLMServer(latency=float(sys.argv[1])).start()
print(server.port, flush=True)
sys.stdin.read()
"""


async def bare(port: int, concurrency: int, calls: int) -> float:
    """The peer: the openai client alone, no cache, limiter or logging."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)
    await client.chat.completions.create(model="bench-model", messages=[{"role": "user", "content": "warm"}])
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await client.chat.completions.create(
                model="bench-model", messages=[{"role": "user", "content": f"bare question {i}"}]
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def run(port: int, latency: float, concurrency: int, calls: int, db_path: Path) -> tuple[float, float]:
    settings = LLMSettings(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="bench",
        model="bench-model",
        max_concurrency=concurrency,
        timeout=30,
    )
    db = Database(db_path)
    with BatchWriter(db) as writer:
        client = LLMClient(settings, db, writer, run_id="bench")
        await client.chat([{"role": "user", "content": "warm up"}], purpose="bench")  # connections, imports
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await client.chat([{"role": "user", "content": f"question number {i}"}], purpose="bench")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        elapsed = time.perf_counter() - started
        await client.aclose()
    con_rows = 0
    with db.read() as con:
        con_rows = con.execute("SELECT count(*) FROM llm_calls WHERE status = 'ok' AND NOT cached").fetchone()[0]
    return elapsed, con_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--calls", type=int, default=640)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="swarm-llm-bench-") as tmp:
            elapsed, logged = asyncio.run(run(port, args.latency, args.concurrency, args.calls, Path(tmp) / "b.duckdb"))
            peer_elapsed = asyncio.run(bare(port, args.concurrency, args.calls))
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=10)
    rate = args.calls / elapsed
    bound = args.concurrency / args.latency
    per_call = (elapsed - peer_elapsed) * args.concurrency / args.calls
    print(
        f"server latency L = {args.latency:.3f} s, concurrency C = {args.concurrency}, {args.calls} calls "
        f"({logged} logged in llm_calls)"
    )
    print(f"ours                : {rate:7.1f} calls/s")
    print(f"peer (openai alone) : {args.calls / peer_elapsed:7.1f} calls/s")
    print(f"bound C/L           : {bound:7.1f} calls/s")
    print(f"ratio ours / bound  : {rate / bound:7.3f}  (target >= 0.90)  {'OK' if rate / bound >= 0.9 else 'UNDER'}")
    print(
        f"our overhead a call : {per_call * 1000:7.1f} ms in flight beyond the bare openai client's "
        "(cache lookup, limiter, llm_calls row)"
    )


if __name__ == "__main__":
    main()
