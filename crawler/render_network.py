"""The rendering browser's network: Chromium has none of its own, and every http(s) request a page makes
is answered by the route handler through our guarded httpx client.

Chromium is launched behind a proxy that refuses every connection (a loopback port this process keeps
bound but never listens on) and with a host resolver that resolves nothing. So whatever the route handler
does not see (a worker's WebSockets, preconnects, WebRTC, which may only use the proxy) dies there, and
Chromium never resolves a name itself. The page's own WebSockets are also closed before they connect,
and service workers are not started (see `Renderer.render`).

What the route handler does see is fetched with `GuardedTransport`: the host is resolved once, every
address is checked against the crawl's `AddressPolicy`, and the socket is opened to the checked address,
so no DNS answer can change between the check and the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from crawler.decode import BadContentEncoding, TooLarge, read_body
from crawler.guard import AddressPolicy, BlockedAddress, DNSFailure, GuardedTransport

if TYPE_CHECKING:
    from playwright.async_api import Route, WebSocketRoute

# Text extraction needs none of these; EventSource and beacons would also hold a fetch open or send data
# out for nothing. "ping" is what Chromium calls sendBeacon and <a ping>.
SKIPPED_TYPES = frozenset({"image", "font", "media", "eventsource", "websocket", "manifest", "texttrack", "ping"})
# hop-by-hop headers, and the ones httpx sets itself (we decode only gzip and deflate, see read_body);
# conditional headers would fetch a 304 for Chromium's cache, which the route handler bypasses
_DROPPED_REQUEST_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "accept-encoding",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
    }
)
# the body handed to Chromium is already decoded and complete
_DROPPED_RESPONSE_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "trailer", "upgrade"}
)


class DeadProxy:
    """A loopback address that refuses every connection: a TCP port bound and never listened on, held
    until `close()`, so that no other process can take the port and answer in its place."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.server = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def close(self) -> None:
        self._socket.close()


def chromium_network_args(proxy: DeadProxy) -> list[str]:
    """Chromium flags that leave it no network but the route handler."""
    return [
        f"--proxy-server={proxy.server}",
        # Chromium bypasses any proxy for loopback implicitly; "<-loopback>" takes that exception away
        "--proxy-bypass-list=<-loopback>",
        # names are never resolved by Chromium, whatever the proxy settings: no second DNS answer exists
        "--host-resolver-rules=MAP * ~NOTFOUND",
        # WebRTC would otherwise send UDP (STUN) straight from the browser, past any proxy
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    ]


def guarded_client(policy: AddressPolicy, timeout: float) -> httpx.AsyncClient:
    """The client that fetches for the browser: the crawl's SSRF guard on every connection, no proxy from
    the environment, and no cookie jar of its own (the browser's cookies travel in the request headers).

    It follows redirects itself, each hop through the guard: Chromium would follow a redirect handed to
    it without asking the route handler again, straight into the dead proxy. httpx drops the Cookie
    header on every hop, so no cookie follows a redirect to another origin."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, httpx.Limits(max_connections=16, max_keepalive_connections=8)),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        headers={"Accept-Encoding": "gzip, deflate"},  # what read_body decodes (httpx would add br, zstd)
        follow_redirects=True,
        max_redirects=10,
        trust_env=False,
    )


@dataclass
class Budget:
    """What one render may fetch: requests, decoded bytes in all, decoded bytes for one response.

    Each response may read what is left of `total_bytes` when it starts, so responses in flight together
    can pass it by at most `resource_bytes` each; the request count is exact."""

    requests: int = 150
    total_bytes: int = 20 * 1024 * 1024
    resource_bytes: int = 5 * 1024 * 1024


class PageNetwork:
    """One render's network. Every request is answered from `client` within `budget`, or aborted with
    its reason kept in `refused`; `close()` stops the fetches still in flight."""

    def __init__(self, client: httpx.AsyncClient, budget: Budget, timeout: float):
        self.client, self.budget, self.timeout = client, budget, timeout
        self.requests = 0
        self.bytes = 0
        self.refused: list[str] = []
        self.document_error: Exception | None = None  # why the page itself could not be fetched
        self.document_url: str | None = None  # where the page itself came from, after redirects
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = False

    async def route(self, route: Route) -> None:
        """Answer one request of the page (the route handler for `context.route`)."""
        from playwright.async_api import Error as PlaywrightError

        if self._closed:  # returning unanswered would let playwright send the request on by itself
            with contextlib.suppress(PlaywrightError):
                await route.abort("blockedbyclient")
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._answer(route)
        except PlaywrightError as exc:
            # the frame went away (a navigation, the render's end) before it took its answer
            if not self._closed:
                self.refused.append(f"{route.request.url}: the browser did not take the answer: {first_line(exc)}")
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def refuse_websocket(self, websocket: WebSocketRoute) -> None:
        """Close a page's WebSocket before it connects anywhere (the handler for `route_web_socket`)."""
        self.refused.append(f"{websocket.url}: WebSockets are not opened by the renderer")
        with contextlib.suppress(Exception):
            await websocket.close(code=1008, reason="blocked by the crawler")

    def close(self) -> None:
        self._closed = True
        for task in self._inflight:
            task.cancel()

    async def _answer(self, route: Route) -> None:
        request = route.request
        is_document = request.is_navigation_request() and request.frame.parent_frame is None
        if request.resource_type in SKIPPED_TYPES:
            await route.abort("blockedbyclient")
            return
        if urlsplit(request.url).scheme not in ("http", "https"):
            await self._refuse(route, f"{request.url}: not an http(s) URL", "blockedbyclient")
            return
        if self.requests >= self.budget.requests:
            await self._refuse(route, f"{request.url}: over {self.budget.requests} requests", "blockedbyclient")
            return
        self.requests += 1
        room = min(self.budget.resource_bytes, self.budget.total_bytes - self.bytes)
        if room <= 0:
            await self._refuse(route, f"{request.url}: over {self.budget.total_bytes} bytes", "blockedbyclient")
            return
        headers = {k: v for k, v in (await request.all_headers()).items() if _forwarded(k)}
        try:
            # one deadline for the whole answer: a body that trickles in would defeat the read timeout
            async with asyncio.timeout(self.timeout):
                async with self.client.stream(
                    request.method, request.url, headers=headers, content=request.post_data_buffer
                ) as response:
                    body = await read_body(response, room)
                    final_url = str(response.url)
        except (BlockedAddress, DNSFailure) as exc:
            if is_document:
                self.document_error = exc
            code = "addressunreachable" if isinstance(exc, BlockedAddress) else "namenotresolved"
            await self._refuse(route, f"{request.url}: {exc}", code)
            return
        except TooLarge as exc:
            await self._refuse(route, f"{request.url}: {exc}", "blockedbyclient")
            return
        except TimeoutError:
            await self._refuse(route, f"{request.url}: no answer within {self.timeout:g}s", "timedout")
            return
        # ValueError: a URL or header httpx will not send (httpx.InvalidURL, non-latin-1 header values)
        except (httpx.HTTPError, httpx.InvalidURL, BadContentEncoding, ValueError) as exc:
            await self._refuse(route, f"{request.url}: {type(exc).__name__}: {exc}", "failed")
            return
        self.bytes += len(body)
        if is_document:
            self.document_url = final_url
        await route.fulfill(status=response.status_code, headers=_response_headers(response.headers), body=body)

    async def _refuse(self, route: Route, why: str, code: str) -> None:
        self.refused.append(why)
        await route.abort(code)


def _forwarded(name: str) -> bool:
    # HTTP/2 pseudo-headers (":authority") are Chromium's view of the wire, not headers to send
    return not name.startswith(":") and name.lower() not in _DROPPED_REQUEST_HEADERS


def _response_headers(headers: httpx.Headers) -> dict[str, str]:
    kept: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        if name.lower() not in _DROPPED_RESPONSE_HEADERS:
            kept.setdefault(name.lower(), []).append(value)
    # playwright takes one string per header; it splits Set-Cookie back on newlines
    return {name: ("\n" if name == "set-cookie" else ", ").join(values) for name, values in kept.items()}


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (playwright's run on with a call log)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
