"""JavaScript rendering with playwright and Debian's Chromium, for pages whose HTML is an empty shell.

One browser per crawl, a small bounded pool of contexts (`--render-contexts`, default 2), and the
browser closed on exit and on errors (`async with Renderer(...)`), so no Chromium outlives a crawl.
The browser's own requests pass the same SSRF policy as ours: every request it makes is checked by a
route handler (host resolved, every address vetted) and aborted when refused; images, fonts and media
are not loaded at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crawler.guard import AddressPolicy

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright, Route

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# flags for a headless, sandboxed-by-container Chromium that makes no calls home (this machine's closed
# network refuses them, many at a time, otherwise)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]
_SKIP = {"image", "font", "media"}


class RenderUnavailable(Exception):
    pass


def find_chromium(configured: str | None = None) -> str:
    """The Chromium to launch: `--browser PATH`, $SWARM_CHROMIUM, or the first on PATH."""
    for candidate in (configured, os.environ.get("SWARM_CHROMIUM")):
        if candidate:
            if os.access(candidate, os.X_OK):
                return candidate
            raise RenderUnavailable(f"browser {candidate!r} is not an executable file")
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise RenderUnavailable(
        "no Chromium found for --render: install Debian's (apt-get install chromium) or pass --browser PATH"
    )


@dataclass
class Rendered:
    html: str
    final_url: str


class Renderer:
    def __init__(
        self,
        policy: AddressPolicy,
        *,
        contexts: int = 2,
        timeout: float = 20.0,
        executable: str | None = None,
        user_agent: str | None = None,
    ):
        self.policy, self.timeout, self.user_agent = policy, timeout, user_agent
        self.executable = find_chromium(executable)
        self._slots = asyncio.Semaphore(max(1, contexts))
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._start_lock = asyncio.Lock()

    async def __aenter__(self) -> Renderer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ensure(self) -> Browser:
        async with self._start_lock:
            if self._browser is None:
                from playwright.async_api import async_playwright

                playwright = await async_playwright().start()
                try:
                    self._browser = await playwright.chromium.launch(
                        executable_path=self.executable,
                        headless=True,
                        args=CHROMIUM_ARGS,
                        # a Ctrl-C or SIGTERM is the crawl's to handle: it closes the browser itself,
                        # after the pages in flight, instead of having it vanish under them
                        handle_sigint=False,
                        handle_sigterm=False,
                    )
                except Exception:
                    await playwright.stop()
                    raise
                self._playwright = playwright
            return self._browser

    async def render(self, url: str) -> Rendered:
        """The DOM after the page's scripts ran (network idle or `timeout`)."""
        browser = await self._ensure()
        async with self._slots:
            context = await browser.new_context(user_agent=self.user_agent, java_script_enabled=True)
            try:
                await context.route("**/*", self._route)
                page = await context.new_page()
                await page.goto(url, wait_until="load", timeout=self.timeout * 1000)
                # a page that never goes quiet is rendered as it is by then
                with contextlib.suppress(Exception):
                    await page.wait_for_load_state("networkidle", timeout=min(5.0, self.timeout) * 1000)
                return Rendered(await page.content(), page.url)
            finally:
                await context.close()

    async def _route(self, route: Route) -> None:
        request = route.request
        if request.resource_type in _SKIP:
            await route.abort()
            return
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            await route.abort()
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port or 80, type=socket.SOCK_STREAM
            )
        except OSError:
            await route.abort()
            return
        if any(self.policy.refusal(str(info[4][0])) for info in infos):
            await route.abort("addressunreachable")
            return
        await route.continue_()

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
