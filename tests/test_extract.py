"""The extraction pool's processes: what they load, and that they never outlive the crawl."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from crawler.extract import Extractor
from tests.support.cli import running

PAGE = "<html><head><title>Bees</title></head><body><article>" + "<p>Bees dance to share where flowers are.</p>" * 20
PAGE += '<a href="/next.html">next</a></article></body></html>'


def test_workers_do_not_rerun_the_main_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # under the `swarm` command __main__ is the whole CLI; a worker must not import it again
    marker = tmp_path / "imported"
    script = tmp_path / "main_script.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('the worker ran __main__')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)

    async def extract() -> str:
        extractor = Extractor(1, 30.0)
        try:
            return (await extractor.extract(PAGE, "http://example.test/bees.html")).text
        finally:
            extractor.close()

    text = asyncio.run(extract())
    assert "Bees dance" in text and sys.modules["__main__"] is main
    assert not marker.exists(), marker.read_text()


@pytest.mark.slow
def test_workers_and_their_fork_server_leave_with_a_crawl_killed_by_kill_9() -> None:
    code = (
        "import asyncio, time, multiprocessing.forkserver as fs\n"
        "from crawler.extract import Extractor\n"
        "async def main():\n"
        "    e = Extractor(2, 30.0)\n"
        "    await e.extract('<html><body><p>hello there</p></body></html>', 'http://example.test/')\n"
        "    print(*e._pool._processes, fs._forkserver._forkserver_pid, flush=True)\n"
        "    time.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    crawl = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert crawl.stdout is not None
        pids = [int(p) for p in crawl.stdout.readline().split()]
        assert len(pids) == 3 and all(running(p) for p in pids)
        crawl.kill()  # kill -9: no cleanup runs in the crawl
        crawl.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in pids if running(p)], "extraction processes outlived their crawl"
    finally:
        crawl.kill()
        for pid in locals().get("pids", []):
            if running(pid):
                os.kill(pid, 9)
