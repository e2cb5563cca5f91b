"""Extraction with trafilatura, off the event loop, in a pool of processes sized to the cores.

trafilatura is CPU-bound and can take seconds on a pathological page, so it runs in worker processes
with a per-page timeout. A worker that times out or dies is a recorded failure for that page and the
pool is rebuilt (a stuck process cannot be interrupted, only replaced); the crawl goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from crawler.reasons import Reason


@dataclass
class Extracted:
    text: str = ""
    title: str | None = None
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    anchors: dict[str, str] = field(default_factory=dict)  # link → its anchor text (first seen)
    bad_links: dict[str, str] = field(default_factory=dict)  # a link that cannot be fetched (as written) → why
    minhash: Any = None  # near-duplicate signature, a rensa RMinHash (storage.minhash)
    error: str | None = None
    detail: str | None = None


_MAX_BAD_LINKS = 100  # a page of thousands of broken links is recorded by its first hundred


def extract_html(html: str, url: str) -> dict[str, Any]:
    """Runs in a worker process: outgoing links (lxml) and main text and metadata (trafilatura) from
    one parse of the page — the links are read first, since trafilatura prunes the tree it is given."""
    import lxml.html
    import trafilatura

    from crawler.urls import BadURL, canonicalise, joined, redacted
    from storage import minhash

    links: list[str] = []
    anchors: dict[str, str] = {}
    bad: dict[str, str] = {}  # a web link that cannot be fetched → why (a mailto: or javascript: link is no page)
    tree: Any = html
    lang_attr = None
    try:
        tree = lxml.html.fromstring(html)
        lang_attr = (tree.get("lang") or "").split("-")[0].lower() or None
        for anchor in tree.iter("a"):
            href = anchor.get("href")
            if not href:
                continue
            try:
                absolute = canonicalise(href, url)
            except BadURL as exc:
                if exc.web and len(bad) < _MAX_BAD_LINKS:
                    bad.setdefault(redacted(joined(href, url))[:2000], str(exc))
                continue
            if absolute not in anchors:
                links.append(absolute)
                anchors[absolute] = " ".join(anchor.text_content().split())[:200]
    except (ValueError, lxml.etree.ParserError):
        tree = html  # let trafilatura try its own, more forgiving, loading
    doc = trafilatura.bare_extraction(tree, url=url, with_metadata=True, favor_recall=True)
    data = doc.as_dict() if doc is not None and hasattr(doc, "as_dict") else (doc or {})
    return {
        "text": data.get("text") or "",
        "title": data.get("title"),
        "language": data.get("language") or lang_attr,
        "metadata": {k: data.get(k) for k in ("author", "date", "sitename", "description", "hostname") if data.get(k)},
        "links": links,
        "anchors": anchors,
        "bad_links": bad,
        "minhash": minhash.signature(data.get("text") or "", minhash.PAGES),
    }


class Extractor:
    """`await extractor.extract(html, url)` → Extracted; never raises for a bad page."""

    def __init__(self, workers: int, timeout: float):
        self.workers, self.timeout = max(1, workers), timeout
        self._pool: cf.ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()

    def warm_up(self) -> None:
        """Start the worker processes now (spawning and importing trafilatura takes a second), so the
        first pages do not wait for them."""
        self._ensure_pool()

    def _ensure_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            with _sigint_ignored(), _bare_main():
                pool = cf.ProcessPoolExecutor(
                    self.workers, mp_context=_context(), initializer=_worker_init, initargs=(os.getpid(),)
                )
                for _ in range(self.workers):  # each submit starts one worker, here, inside the ignore
                    pool.submit(_warm)
            self._pool = pool
        return self._pool

    async def extract(self, html: str, url: str) -> Extracted:
        pool = self._ensure_pool()
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.run_in_executor(pool, extract_html, html, url), self.timeout)
        except TimeoutError:
            await self._replace_pool(pool)
            return Extracted(error=Reason.EXTRACT_TIMEOUT, detail=f"extraction took over {self.timeout:g}s")
        except cf.BrokenExecutor as exc:
            await self._replace_pool(pool)
            return Extracted(error=Reason.EXTRACT_FAILED, detail=f"the extraction process died: {exc}")
        except Exception as exc:  # trafilatura/lxml errors on odd markup: that page fails, not the crawl
            return Extracted(error=Reason.EXTRACT_FAILED, detail=f"{type(exc).__name__}: {exc}")
        return Extracted(**data)

    async def _replace_pool(self, broken: cf.ProcessPoolExecutor) -> None:
        async with self._lock:
            if self._pool is broken:
                self._pool = None
                _kill(broken)

    def close(self, wait: float = 2.0) -> None:
        """Stop the workers: idle ones exit at once; one still inside a page gets `wait` seconds, then is
        killed (nobody needs its result, and a stop must not wait for trafilatura)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + wait
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)


# what an extraction worker runs on: loaded once into the fork server, shared by every worker it forks
_PRELOAD = ["crawler.extract", "lxml.html", "trafilatura", "storage.minhash", "crawler.urls"]


def _context() -> multiprocessing.context.BaseContext:
    """Workers forked from a fork server. Not plain fork: forking a process that runs an event loop and
    threads is unsafe. Not spawn: each worker would start a fresh interpreter and import trafilatura, a
    second and ~100 MB a worker, again whenever a stuck worker's pool is replaced. The fork server is one
    clean process that imports what a worker needs once; a new worker is a fork of it, in milliseconds."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """The workers share the terminal's process group, so a Ctrl-C meant for the crawl reaches them too
    and, unhandled, kills them (breaking the pool under every page in flight). A process started while
    SIGINT is ignored is ignoring it from its first instruction (SIG_IGN survives exec), before its
    imports; an initializer alone would come too late for a worker still starting up."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # only the main thread may change handlers (and one set outside Python cannot be restored)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """A new worker re-runs the parent's __main__ script, if it has one, before anything else (that is
    how multiprocessing makes __main__'s functions importable there). Ours never need it, and under the
    `swarm` command it is the whole CLI: 1-2 s and ~110 MB a worker. So while workers are started,
    __main__ is a module with no file."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__file__", None) is None:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # also for workers started outside the main thread
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """A worker whose crawl was killed (kill -9) would wait on its task queue forever, and keep its fork
    server alive too: it checks on the crawl's process and leaves with it. (Not os.getppid(): a worker's
    parent is the fork server.)"""
    while True:
        time.sleep(2.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def _warm() -> None:
    import trafilatura  # noqa: F401  (imported once per worker, ahead of the first page)


def _kill(pool: cf.ProcessPoolExecutor) -> None:
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()  # a stuck trafilatura call cannot be cancelled any other way
    pool.shutdown(wait=False, cancel_futures=True)
