"""The JavaScript renderer against a page that tries every way out of the browser: nothing reaches an
address the crawl's policy refuses, and the page still renders.

The page is served from 127.0.0.1, the only network the policy allows. Refused listeners wait on
127.0.0.2 (Linux routes all of 127/8 to loopback) and on ::1, and count every connection at the socket
level, so a channel the route handler never sees (WebSockets, preconnects, WebRTC) is counted too.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Self
from urllib.parse import parse_qs, urlsplit

import pytest

from agents.sample_site.loopback import LoopbackServer, OwnedHandler
from crawler.extract import extract_html
from crawler.guard import AddressPolicy
from crawler.render import Renderer, RenderUnavailable, find_chromium
from crawler.render_network import Budget

ONLY_THE_PAGE = AddressPolicy(allowed_networks=("127.0.0.1/32",))
ARTICLE = (
    "The lighthouse keeper counted the ships that passed the northern cape each winter night. "
    "Her ledger recorded every lantern, every flag and every storm for forty years on the island. "
) * 4

# Every channel a page has to the network, tried against one base URL; each attempt writes its outcome
# into #log and, once all are settled, #done says so (the test reads that from the rendered DOM).
CHANNELS_JS = """
const log = (line) => { const li = document.createElement('li'); li.textContent = line;
                        document.getElementById('log').appendChild(li); };
const settle = (name, promise) => promise.then(() => log(name + ' reached'), () => log(name + ' failed'));
const timeout = (ms) => new Promise((_, reject) => setTimeout(reject, ms));
const race = (promise) => Promise.race([promise, timeout(4000)]);
function tryAll(http, ws, stun) {
  const tries = [];
  tries.push(settle('fetch ' + http, fetch(http + '/fetch', {mode: 'no-cors'})));
  tries.push(settle('xhr ' + http, race(new Promise((ok, fail) => {
    const x = new XMLHttpRequest(); x.open('GET', http + '/xhr'); x.onload = ok; x.onerror = fail; x.send(); }))));
  tries.push(settle('iframe ' + http, race(new Promise((ok, fail) => {
    const f = document.createElement('iframe'); f.src = http + '/iframe'; f.onload = ok; f.onerror = fail;
    document.body.appendChild(f); }))));
  tries.push(settle('websocket ' + ws, race(new Promise((ok, fail) => {
    const w = new WebSocket(ws + '/ws'); w.onopen = ok; w.onerror = fail; w.onclose = fail; }))));
  tries.push(settle('eventsource ' + http, race(new Promise((ok, fail) => {
    const e = new EventSource(http + '/sse'); e.onopen = () => { e.close(); ok(); };
    e.onerror = () => { e.close(); fail(); }; }))));
  tries.push(settle('beacon ' + http, new Promise((ok, fail) => {
    (navigator.sendBeacon(http + '/beacon', 'x') ? ok : fail)(); })));
  tries.push(settle('img ' + http, race(new Promise((ok, fail) => {
    const i = new Image(); i.onload = ok; i.onerror = fail; i.src = http + '/img.png'; }))));
  // a worker's requests and WebSockets are its own, not the page's
  const inWorker = `Promise.allSettled([fetch(${JSON.stringify(http + '/worker')}), new Promise((ok, fail) => {
      const s = new WebSocket(${JSON.stringify(ws + '/worker-ws')}); s.onopen = ok; s.onerror = fail; })])
    .then((results) => postMessage(results.map((r) => r.status).join()));`;
  tries.push(settle('worker ' + http, race(new Promise((ok, fail) => {
    const worker = new Worker(URL.createObjectURL(new Blob([inWorker], {type: 'text/javascript'})));
    worker.onmessage = (e) => (e.data.includes('fulfilled') ? ok : fail)(); worker.onerror = fail; }))));
  const link = document.createElement('link'); link.rel = 'preconnect'; link.href = http;
  document.head.appendChild(link);
  if (stun) {
    tries.push(settle('webrtc ' + stun, race(new Promise(async (ok, fail) => {
      const pc = new RTCPeerConnection({iceServers: [{urls: 'stun:' + stun}]});
      pc.createDataChannel('x');
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') fail(); };
      await pc.setLocalDescription(await pc.createOffer()); }))));
  }
  return tries;
}
"""


class RefusedListener:
    """TCP and UDP sockets on a refused address that count whatever reaches them."""

    def __init__(self, family: socket.AddressFamily, host: str):
        self.host, self.accepted, self.datagrams = host, 0, 0
        self._tcp = socket.socket(family, socket.SOCK_STREAM)
        self._tcp.bind((host, 0))
        self._tcp.listen(64)
        self._udp = socket.socket(family, socket.SOCK_DGRAM)
        self._udp.bind((host, 0))
        self.port, self.udp_port = self._tcp.getsockname()[1], self._udp.getsockname()[1]
        self._stopped = False

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._receive, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = True
        for sock in (self._tcp, self._udp):
            # shutdown wakes the threads blocked in accept/recv; close alone does not
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def _receive(self) -> None:
        while not self._stopped:
            try:
                data = self._udp.recv(2048)
            except OSError:
                return
            if data:
                self.datagrams += 1


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class PageHandler(OwnedHandler):
    owner: PageSite

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.owner.hits.append(parts.path)
        if parts.path == "/":
            self._send(200, self.owner.page(), "text/html; charset=utf-8")
        elif parts.path == "/app.js":
            script = f"document.getElementById('app').innerHTML = {json.dumps(self.owner.article_html())};"
            self._send(200, script, "text/javascript")
        elif parts.path == "/hop":  # a redirect from the allowed origin to wherever ?to= says
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/hold.js":
            self.owner.done.wait(20)
            self._send(200, "", "text/javascript")
        elif parts.path == "/done":
            self.owner.done.set()
            self._send(200, "", "text/plain")
        elif parts.path == "/note.txt":
            self._send(200, "redirects are followed", "text/plain")
        elif parts.path == "/big.js":  # runs fine, if it is ever delivered
            self._send(
                200,
                "document.getElementById('app').textContent = 'the big script ran';" + "//" + "x" * 200_000,
                "text/javascript",
            )
        elif parts.path == "/big":
            self._send(
                200, '<html><body><div id="app"></div><script src="/big.js"></script></body></html>', "text/html"
            )
        elif parts.path == "/many":
            self._send(200, self.owner.many_page(), "text/html; charset=utf-8")
        else:
            self._send(200, "{}", "application/json")

    def _send(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class PageSite(LoopbackServer):
    """The allowed origin: a page whose article is written by its own script, and which tries every
    channel against the refused listeners."""

    handler = PageHandler

    def __init__(self, targets: list[tuple[str, str, str | None]]):
        super().__init__()
        self.targets = targets  # (http base, ws base, stun host:port or None)
        self.hits: list[str] = []
        self.done = threading.Event()  # the page has tried every channel

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def article_html(self) -> str:
        return f"<article><h1>The lighthouse ledger</h1><p>{ARTICLE}</p></article>"

    def page(self) -> str:
        calls = [f"...tryAll({json.dumps(h)}, {json.dumps(w)}, {json.dumps(s)})" for h, w, s in self.targets]
        # redirects from the allowed origin to each refused address: every hop passes the guard
        calls += [
            f"settle('redirect ' + {json.dumps(h)}, fetch({json.dumps(self.url('/hop?to=') + h + '/hop')}))"
            for h, _, _ in self.targets
        ]
        return (
            '<html lang="en"><head><title>Ledger</title></head>'
            f'<body><div id="app"></div><script src="{self.url("/app.js")}"></script>'
            '<ul id="log"></ul><p id="note"></p><p id="done"></p>'
            # a redirect within the allowed origin still works: every hop is fetched through the guard
            "<script>fetch('/hop?to=/note.txt').then((r) => r.text())"
            ".then((t) => { document.getElementById('note').textContent = t; });</script>"
            f"<script>{CHANNELS_JS}\n"
            f"Promise.allSettled([{', '.join(calls)}])\n"
            "  .then(() => new Promise((ok) => setTimeout(ok, 500)))  // beacons have no completion event\n"
            "  .then(() => { document.getElementById('done').textContent = 'every channel was tried';\n"
            "                return fetch('/done'); });</script>"
            # the server holds this script until /done: the page's load event, which the render waits
            # for, comes only after every channel was tried
            f'<script src="{self.url("/hold.js")}"></script></body></html>'
        )

    def many_page(self) -> str:
        return (
            '<html lang="en"><head><title>Many</title></head><body><div id="app"></div><script>'
            "Promise.allSettled(Array.from({length: 60}, (_, i) => fetch('/item/' + i)));"
            "fetch('/app.js').then((r) => r.text()).then(eval);"
            "</script></body></html>"
        )


@pytest.fixture
def chromium() -> str:
    try:
        return find_chromium()
    except RenderUnavailable as exc:
        pytest.skip(f"no Chromium: {exc}")


@pytest.fixture
def listeners() -> Iterator[list[RefusedListener]]:
    with RefusedListener(socket.AF_INET, "127.0.0.2") as v4:
        if not ipv6_loopback():
            yield [v4]
            return
        with RefusedListener(socket.AF_INET6, "::1") as v6:
            yield [v4, v6]


@pytest.mark.slow  # starts Chromium
async def test_a_rendered_page_reaches_no_refused_address_by_any_channel(
    chromium: str, listeners: list[RefusedListener]
) -> None:
    targets: list[tuple[str, str, str | None]] = []
    for listener in listeners:
        targets.append((f"http://{listener.authority}", f"ws://{listener.authority}", None))
    v4 = listeners[0]
    targets[0] = (targets[0][0], targets[0][1], f"{v4.host}:{v4.udp_port}")
    if len(listeners) > 1:
        # Chromium resolves "localhost" itself, to ::1 as well; our guard resolves it from /etc/hosts
        # (127.0.0.1 on Debian, plus ::1 where listed). Two resolutions that disagree are the
        # rebinding window: only one of them may decide where the connection goes.
        port = listeners[1].port
        targets.append((f"http://localhost:{port}", f"ws://localhost:{port}", None))
    with PageSite(targets) as site:
        async with Renderer(ONLY_THE_PAGE, timeout=15.0, executable=chromium) as renderer:
            rendered = await renderer.render(site.url("/"))
        time.sleep(0.3)  # an accept that raced the end of the render is counted all the same

    assert "every channel was tried" in rendered.html, rendered.html[-3000:]
    for listener in listeners:
        assert (listener.accepted, listener.datagrams) == (0, 0), f"{listener.host} was reached"
    # the page still renders: its own script (a subresource from the allowed origin) wrote the article
    extracted = extract_html(rendered.html, rendered.final_url)
    assert "The lighthouse keeper counted the ships" in extracted["text"]
    assert "/app.js" in site.hits
    assert '<p id="note">redirects are followed</p>' in rendered.html
    # and what was refused is said, with the address and why
    assert any("127.0.0.2" in why and "loopback" in why for why in rendered.refused), rendered.refused


@pytest.mark.slow  # starts Chromium
async def test_a_page_gets_only_its_budget_of_requests_and_bytes(chromium: str) -> None:
    budget = Budget(requests=10, resource_bytes=100_000)
    with PageSite([]) as site:
        async with Renderer(ONLY_THE_PAGE, timeout=15.0, executable=chromium, budget=budget) as renderer:
            many = await renderer.render(site.url("/many"))
            hits = len(site.hits)
            big = await renderer.render(site.url("/big"))
    assert hits <= 10, site.hits
    assert any("over 10 requests" in why for why in many.refused), many.refused
    assert "the big script ran" not in big.html
    assert any("/big.js" in why and "100000-byte limit" in why for why in big.refused), big.refused
