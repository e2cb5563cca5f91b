"""`swarm serve` as a user starts it (a real process on a loopback port), and Chromium to look at it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crawler.render import find_chromium


@contextmanager
def served(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`swarm serve --port 0 …` running; yields its base URL (http://127.0.0.1:PORT)."""
    exe = Path(sys.executable).parent / "swarm"
    process = subprocess.Popen(
        [str(exe), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://[^\s/]+", line)
        if not found:
            process.kill()
            raise AssertionError(f"swarm serve did not start: {line!r} {process.communicate(timeout=10)}")
        yield found.group(0)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, as the crawler's renderer uses it. Playwright's sync API runs
    an event loop in this thread while it is open: start it after the `swarm` commands a test runs
    in-process (they run their own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=find_chromium())
        try:
            yield chromium
        finally:
            chromium.close()


def wait_until(check: Any, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")
