"""Crawl speed: end-to-end pages/s (fetch + extract + store) against Scrapy and against a bound.

On a generated local site (default 2,000 articles over 20 hosts, served by another process), with
politeness limits raised as a user would for their own hosts (robots.txt still read), this prints:
  - ours: `Crawl` → DuckDB, pages/s and peak memory;
  - peer: Scrapy with trafilatura in an item pipeline (writing JSON lines), same URLs, same limits;
  - bound: the same pages' HTML extracted by trafilatura alone in a process pool sized to the cores;
  - ratios: ours / Scrapy (target >= 1.5) and ours / bound (target >= 0.8);
  - memory: our peak at half and at all the pages (it must stay flat as the page count grows).

Ours and Scrapy run alternately `--repeats` times (default 2) and the best run of each is compared:
this machine's noise only ever adds time, and alternating lets drift in its load hit both alike.

    python benchmarks/crawl_speed.py                 # 2,000 pages, 20 hosts
    python benchmarks/crawl_speed.py --pages 400 --repeats 1    # a quick look
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent

OURS = """
import asyncio, json, resource, sys, time
from crawler import Crawl, CrawlSettings
from storage import BatchWriter, Database
urls = open(sys.argv[1]).read().split()
settings = CrawlSettings(allowed_networks=("127.0.0.0/8",), host_rate=0, host_concurrency=8, concurrency=64,
                         render="never", min_text_chars=100)
async def main():
    with BatchWriter(Database(sys.argv[2])) as writer:
        stats = await Crawl(settings, writer).run(urls)
    return stats
t = time.perf_counter()
stats = asyncio.run(main())
seconds = time.perf_counter() - t
# the extraction workers are forked by multiprocessing's fork server: stop and reap it, so that its
# children's CPU time and memory reach RUSAGE_CHILDREN (private API, for this measurement only)
import multiprocessing.forkserver as forkserver
getattr(forkserver._forkserver, "_stop", lambda: None)()
print(json.dumps({"seconds": seconds, "ok": stats.ok, "failed": dict(stats.by_reason),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
                  "children_cpu_s": sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])}))
"""

SCRAPY = """
import json, resource, sys, time
import scrapy, trafilatura
from scrapy.crawler import CrawlerProcess

urls = open(sys.argv[1]).read().split()
out = open(sys.argv[2], "w")
count = {"items": 0}

class ExtractPipeline:
    def process_item(self, item, spider=None):
        doc = trafilatura.bare_extraction(item["html"], url=item["url"], with_metadata=True, favor_recall=True)
        data = doc.as_dict() if doc is not None else {}
        out.write(json.dumps({"url": item["url"], "title": data.get("title"), "text": data.get("text")}) + "\\n")
        count["items"] += 1
        return {"url": item["url"]}

class Pages(scrapy.Spider):
    name = "pages"
    start_urls = urls
    def parse(self, response):
        yield {"url": response.url, "html": response.text}

process = CrawlerProcess(settings={
    "LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": True, "CONCURRENT_REQUESTS": 64, "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "DOWNLOAD_DELAY": 0, "TELNETCONSOLE_ENABLED": False, "ITEM_PIPELINES": {"__main__.ExtractPipeline": 100},
    "COOKIES_ENABLED": False, "RETRY_ENABLED": True,
})
t = time.perf_counter()
process.crawl(Pages)
process.start()
seconds = time.perf_counter() - t
out.close()
print(json.dumps({"seconds": seconds, "ok": count["items"],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


FETCH = """
import asyncio, json, resource, sys, time
import httpx
urls = open(sys.argv[1]).read().split()
async def main():
    limit = asyncio.Semaphore(64)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        async def one(url):
            async with limit:
                return len((await client.get(url)).text)
        return await asyncio.gather(*(one(u) for u in urls))
t = time.perf_counter()
sizes = asyncio.run(main())
seconds = time.perf_counter() - t
assert all(sizes)
print(json.dumps({"seconds": seconds, "ok": len(sizes), "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])}))
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _extract(args: tuple[str, str]) -> int:
    import trafilatura

    html, url = args
    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, favor_recall=True)
    return len(doc.as_dict().get("text") or "") if doc is not None else 0


def run(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    per_host = max(1, args.pages // args.hosts)
    server = subprocess.Popen(
        [sys.executable, str(HERE / "bench_site.py"), "--hosts", str(args.hosts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        urls = [f"http://127.0.0.1:{port}/{n}.html" for n in range(1, per_host + 1) for port in ports]
        print(
            f"site: {len(urls)} pages on {len(ports)} hosts (127.0.0.1, served by another process); "
            f"cores: {os.cpu_count()}"
        )
        with tempfile.TemporaryDirectory(prefix="swarm-crawl-bench-") as tmp_name:
            tmp = Path(tmp_name)
            url_file = tmp / "urls.txt"
            url_file.write_text("\n".join(urls))
            half_file = tmp / "half.txt"
            half_file.write_text("\n".join(urls[: len(urls) // 2]))

            with httpx.Client(timeout=10) as client:  # the bound extracts already-fetched pages
                pages = [(client.get(u).text, u) for u in urls]
            workers = os.cpu_count() or 1
            children_before = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
            with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(_extract, pages[: workers * 2]))  # start the workers before timing
                t = time.perf_counter()
                extracted = list(pool.map(_extract, pages, chunksize=8))
                bound_seconds = time.perf_counter() - t
            # the pool's workers are reaped when it shuts down; their start-up is a small part of this
            bound_cpu = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - children_before
            bound_rate = len(pages) / bound_seconds
            assert all(extracted), "the bound extracted an empty page"

            def measured(code: str, *step_args: str) -> dict:
                before = cpu_seconds(server.pid)
                result = run(code, *step_args)
                return {**result, "server_cpu_s": cpu_seconds(server.pid) - before}

            # the least any httpx crawler of this site must do besides extracting: fetch and decode
            fetch = measured(FETCH, str(url_file))
            ours_half = run(OURS, str(half_file), str(tmp / "half.duckdb"))
            ours_runs, scrapy_runs = [], []
            for n in range(max(1, args.repeats)):  # alternately, so drift in the machine's load hits both
                ours_runs.append(measured(OURS, str(url_file), str(tmp / f"ours{n}.duckdb")))
                scrapy_runs.append(run(SCRAPY, str(url_file), str(tmp / f"scrapy{n}.jsonl")))
            ours = min(ours_runs, key=lambda r: r["seconds"])
            scrapy = min(scrapy_runs, key=lambda r: r["seconds"])
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=10)

    ours_rate = ours["ok"] / ours["seconds"]
    scrapy_rate = scrapy["ok"] / scrapy["seconds"]
    print(f"\n== end to end: fetch + extract + store (best of {len(ours_runs)} alternating runs each) ==")
    print(
        "runs    ours "
        + " ".join(f"{r['ok'] / r['seconds']:.0f}" for r in ours_runs)
        + " pages/s; Scrapy "
        + " ".join(f"{r['ok'] / r['seconds']:.0f}" for r in scrapy_runs)
        + " pages/s"
    )
    print(
        f"ours    swarm crawl (DuckDB)         : {ours_rate:7.1f} pages/s  ({ours['ok']} ok, "
        f"{sum(ours['failed'].values())} failed, {ours['seconds']:.1f} s)"
    )
    print(
        f"peer    Scrapy + trafilatura pipeline: {scrapy_rate:7.1f} pages/s  ({scrapy['ok']} ok, "
        f"{scrapy['seconds']:.1f} s)"
    )
    print(f"bound   trafilatura alone, {workers} procs   : {bound_rate:7.1f} pages/s")
    print(
        f"ratio   ours / Scrapy                : {ours_rate / scrapy_rate:7.2f}x  (target >= 1.5)  "
        f"{'OK' if ours_rate / scrapy_rate >= 1.5 else 'UNDER'}"
    )
    print(
        f"ratio   ours / bound                 : {ours_rate / bound_rate:7.2f}   (target >= 0.80) "
        f"{'OK' if ours_rate / bound_rate >= 0.8 else 'UNDER'}"
    )
    extract_ms = bound_cpu / len(pages) * 1000
    fetch_ms, serve_ms = (fetch[k] / fetch["ok"] * 1000 for k in ("cpu_s", "server_cpu_s"))
    ours_ms = [ours[k] / ours["ok"] * 1000 for k in ("cpu_s", "children_cpu_s", "server_cpu_s")]
    ceiling = extract_ms / (extract_ms + fetch_ms + serve_ms)
    print(f"\n== CPU a page, {workers} cores shared by every process of a step ==")
    print(f"bound   trafilatura alone                        : {extract_ms:5.1f} ms")
    print(
        f"fetch   httpx.AsyncClient, GET + decode, nothing else: {fetch_ms:5.1f} ms + site server {serve_ms:4.1f} ms "
        f"({fetch['ok'] / fetch['seconds']:.0f} pages/s)"
    )
    print(
        f"ours    crawler {ours_ms[0]:5.1f} ms + extraction workers {ours_ms[1]:4.1f} ms "
        f"+ site server {ours_ms[2]:4.1f} ms"
    )
    print(
        f"ceiling extraction / (extraction + fetch + serve)  : {ceiling:5.2f} of the bound: what a crawl that "
        "did nothing but fetch with httpx and extract could reach here"
    )
    print("\n== memory (peak RSS) ==")
    print(
        f"ours, {len(urls) // 2:5d} pages: crawler {ours_half['peak_mb']:6.0f} MB, largest extraction worker "
        f"{ours_half['children_peak_mb']:5.0f} MB"
    )
    print(
        f"ours, {len(urls):5d} pages: crawler {ours['peak_mb']:6.0f} MB, largest extraction worker "
        f"{ours['children_peak_mb']:5.0f} MB   (growth {ours['peak_mb'] / ours_half['peak_mb']:.2f}x for 2x pages)"
    )
    print(f"Scrapy, {len(urls):5d} pages: {scrapy['peak_mb']:6.0f} MB")


if __name__ == "__main__":
    main()
