"""JavaScript rendering with playwright and Debian's Chromium, for pages whose HTML is an empty shell.

One browser per crawl, a small bounded pool of contexts (`--render-contexts`, default 2), and the
browser closed on exit and on errors (`async with Renderer(...)`), so no Chromium outlives a crawl.

Chromium has no network of its own (see `crawler.render_network`): every http(s) request a page makes,
the page itself included, is fetched by our SSRF-guarded httpx client and handed to the browser, within a
request and byte budget per render; WebSockets are closed, service workers blocked, and images, fonts and
media not loaded at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crawler.guard import AddressPolicy
from crawler.render_network import (
    Budget,
    DeadProxy,
    PageNetwork,
    chromium_network_args,
    first_line,
    guarded_client,
)
from storage.errors import SwarmError

if TYPE_CHECKING:
    import httpx
    from playwright.async_api import Browser, Playwright

log = logging.getLogger(__name__)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# flags for a headless Chromium that makes no calls home (this machine's closed network refuses them,
# many at a time, otherwise)
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]


class RenderUnavailable(SwarmError):
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
        "no Chromium found for {--render}: install Debian's (apt-get install chromium) or pass {--browser} PATH"
    )


def sandbox_wanted() -> bool:
    """Whether to ask for Chromium's sandbox: yes, unless this process is root, where Chromium refuses to
    start with it ("Running as root without --no-sandbox is not supported"), as in containers and CI.
    Without the sandbox a compromised renderer process has this user's rights on this machine; it still
    has no network of its own (render_network), which is what the SSRF guard relies on."""
    return os.geteuid() != 0


@dataclass
class Rendered:
    html: str
    final_url: str
    refused: list[str] = field(default_factory=list)  # requests of the page that were not answered, and why


class Renderer:
    def __init__(
        self,
        policy: AddressPolicy,
        *,
        contexts: int = 2,
        timeout: float = 20.0,
        executable: str | None = None,
        user_agent: str | None = None,
        budget: Budget | None = None,
    ):
        self.policy, self.timeout, self.user_agent = policy, timeout, user_agent
        self.budget = budget or Budget()
        self.executable = find_chromium(executable)
        self.sandboxed: bool | None = None  # known once the browser has started
        self._slots = asyncio.Semaphore(max(1, contexts))
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._client: httpx.AsyncClient | None = None
        self._proxy: DeadProxy | None = None
        self._start_lock = asyncio.Lock()

    async def __aenter__(self) -> Renderer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ensure(self) -> tuple[Browser, httpx.AsyncClient]:
        async with self._start_lock:
            if self._browser is None:
                from playwright.async_api import async_playwright

                proxy = DeadProxy()
                playwright = await async_playwright().start()
                try:
                    self._browser = await self._launch(playwright, proxy)
                except BaseException:
                    await playwright.stop()
                    proxy.close()
                    raise
                self._playwright, self._proxy = playwright, proxy
                self._client = guarded_client(self.policy, self.timeout)
            assert self._client is not None
            return self._browser, self._client

    async def _launch(self, playwright: Playwright, proxy: DeadProxy) -> Browser:
        from playwright.async_api import Error as PlaywrightError

        args = CHROMIUM_ARGS + chromium_network_args(proxy)
        sandbox = sandbox_wanted()
        while True:
            try:
                browser = await playwright.chromium.launch(
                    executable_path=self.executable,
                    headless=True,
                    args=args,
                    chromium_sandbox=sandbox,
                    # a Ctrl-C or SIGTERM is the crawl's to handle: it closes the browser itself,
                    # after the pages in flight, instead of having it vanish under them
                    handle_sigint=False,
                    handle_sigterm=False,
                )
            except PlaywrightError as exc:
                # A container without user namespaces (and without Chromium's setuid helper) cannot give
                # Chromium its sandbox. The page's network is ours either way (render_network), so the
                # render goes on without it, and says so.
                if not sandbox or "sandbox" not in str(exc).lower():
                    raise
                log.warning("Chromium's sandbox cannot start here; rendering without it: %s", first_line(exc))
                sandbox = False
                continue
            self.sandboxed = sandbox
            return browser

    async def render(self, url: str) -> Rendered:
        """The DOM after the page's scripts ran (network idle or `timeout`). Raises the guard's
        `BlockedAddress` or `DNSFailure` when the page itself may not or cannot be fetched."""
        browser, client = await self._ensure()
        async with self._slots:
            network = PageNetwork(client, self.budget, self.timeout)
            context = await browser.new_context(
                user_agent=self.user_agent, java_script_enabled=True, service_workers="block"
            )
            try:
                await context.route("**/*", network.route)
                await context.route_web_socket("**/*", network.refuse_websocket)
                page = await context.new_page()
                try:
                    await page.goto(url, wait_until="load", timeout=self.timeout * 1000)
                except Exception:
                    if network.document_error is not None:  # a clearer reason than net::ERR_…
                        raise network.document_error from None
                    raise
                # a page that never goes quiet is rendered as it is by then
                with contextlib.suppress(Exception):
                    await page.wait_for_load_state("networkidle", timeout=min(5.0, self.timeout) * 1000)
                # a redirect of the page itself was followed by our client, out of Chromium's sight
                return Rendered(await page.content(), network.document_url or page.url, list(network.refused))
            finally:
                network.close()
                await context.close()

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None
