"""A local test website with fault injection, for the crawler's tests (127.0.0.1 only).

    with Site(articles=10) as site:          # a server on an ephemeral port, in a thread
        site.url("/articles/1.html")
        site.paths()                         # what the crawler asked for, in order

Routes: articles and an index, robots.txt (or its 404/500), sitemaps (plain, index, .gz), RSS and Atom
feeds, redirect chains and loops, an open redirect, 429/5xx that recover (with Retry-After), slow
pages, dropped connections, oversized bodies (with and without Content-Length), a gzip bomb, binary
content, mis-declared, undeclared and unusable charsets (UTF-16 without a BOM, Shift-JIS labelled
ISO-8859-1, `charset=undefined`), bodies and headers dripped a byte at a time, a JavaScript-only page
and a bot-challenge page.
"""

from __future__ import annotations

import gzip
import json
import random
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from agents.sample_site.loopback import LoopbackServer, OwnedHandler

TOPICS = [
    "gardening",
    "cycling",
    "cooking",
    "astronomy",
    "personal finance",
    "woodworking",
    "birdwatching",
    "sleep and health",
    "programming",
    "music history",
]
_WORDS = [
    "season",
    "soil",
    "compost",
    "route",
    "gear",
    "climb",
    "recipe",
    "flavour",
    "oven",
    "orbit",
    "telescope",
    "budget",
    "savings",
    "timber",
    "joint",
    "feather",
    "migration",
    "rest",
    "habit",
    "function",
    "module",
    "melody",
    "rhythm",
    "archive",
    "method",
    "practice",
    "balance",
    "detail",
    "question",
    "answer",
    "evidence",
    "result",
    "community",
    "beginner",
    "expert",
    "weekend",
    "morning",
    "project",
]


def prose(seed: int, paragraphs: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(4, 7)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        out.append(" ".join(sentences))
    return out


def japanese_page() -> str:
    """An article in Japanese (for pages served in Shift-JIS)."""
    sentences = "庭の土は春に耕します。堆肥を混ぜると野菜がよく育ちます。朝の水やりは大切です。" * 12
    return (
        '<html lang="ja"><head><title>家庭菜園の手引き</title></head><body><article><h1>家庭菜園の手引き</h1>'
        f"<p>{sentences}</p><p>{sentences}</p></article></body></html>"
    )


_BOMB: bytes | None = None
_BOMB_LOCK = threading.Lock()
MIB = 1024 * 1024


def bomb(mib: int = 1024) -> bytes:
    """`mib` MiB of "<p>000…" as ~1 MB of gzip, built in a fraction of a second: after a full flush the
    compressor has no history, so each further MiB of zeros compresses to the same bytes, which are
    repeated; the gzip trailer (CRC and length of everything) is written by hand. Deflating a whole GiB
    would take seconds, and a slow first response would turn "too_large" into "timeout"."""
    global _BOMB
    with _BOMB_LOCK:
        if _BOMB is None:
            first, zeros = b"<p>" + b"0" * (MIB - 3), b"0" * MIB
            deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
            head = deflate.compress(first) + deflate.flush(zlib.Z_FULL_FLUSH)
            repeat = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
            end = deflate.flush()[:-8]  # drop its trailer: ours covers every MiB sent
            crc = zlib.crc32(first)
            for _ in range(mib - 1):
                crc = zlib.crc32(zeros, crc)
            _BOMB = head + repeat * (mib - 1) + end + struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)
    return _BOMB


@dataclass
class Request:
    time: float
    method: str
    path: str
    headers: dict[str, str]


class Site(LoopbackServer):
    def __init__(self, *, robots: str | None = None, articles: int = 30, name: str = "site"):
        super().__init__()
        self.articles, self.name = articles, name
        self._robots = robots
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}
        self.fixed: dict[str, tuple[int, str, bytes]] = {}  # path → (status, content type, body), served first
        self.extra_hits: list[str] = []  # URLs the search endpoint adds to every answer, as a hostile index might

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def robots(self) -> str:
        if self._robots is None:
            return f"User-agent: *\nDisallow: /private/\nCrawl-delay: 1\nSitemap: {self.base}/sitemap.xml\n"
        return self._robots

    @robots.setter
    def robots(self, value: str) -> None:
        self._robots = value

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.log]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def _record(self, request: Request) -> int:
        with self._lock:
            self.log.append(request)
            self._hits[request.path] = self._hits.get(request.path, 0) + 1
            return self._hits[request.path]

    # -- pages ---------------------------------------------------------------------------------------
    def article(self, n: int, path: str | None = None) -> str:
        topic = TOPICS[n % len(TOPICS)]
        others = [(n + k - 1) % self.articles + 1 for k in (1, 2, 3)]
        links = "".join(f'<li><a href="/articles/{o}.html">More on {TOPICS[o % len(TOPICS)]}</a></li>' for o in others)
        body = "".join(f"<p>{p}</p>" for p in prose(n))
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{topic.title()} notes #{n}</title>'
            f'<meta name="author" content="Author {n}"><meta name="description" content="Notes on {topic}">'
            f'<meta property="og:site_name" content="{self.name}"></head><body>'
            f'<nav><a href="/">Home</a> <a href="/private/secret.html">Members</a></nav>'
            f'<article><h1>{topic.title()} notes #{n}</h1><time datetime="2024-0{n % 9 + 1}-1{n % 10}">date</time>'
            f'{body}</article><ul>{links}<li><a href="{self.base}/articles/{others[0]}.html">abs</a></li>'
            f'<li><a href="http://example.invalid/x">elsewhere</a></li></ul>'
            f"<footer>© {self.name} · Contact · Privacy</footer></body></html>"
        )

    def ascii_article(self, n: int) -> str:
        """Article `n` in ASCII only and without a charset of its own: the bytes then decode "cleanly" in
        many wrong charsets (UTF-16 read as UTF-8 is text with a NUL every other character)."""
        page = self.article(n).replace('<meta charset="utf-8">', "").replace("©", "(c)").replace("·", "-")
        assert page.isascii()
        return page

    def sitemap(self, numbers: list[int]) -> str:
        urls = "".join(f"<url><loc>{self.base}/articles/{n}.html</loc></url>" for n in numbers)
        return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


class _Handler(OwnedHandler):
    owner: Site

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        site = self.owner
        hits = site._record(Request(time.monotonic(), self.command, self.path, dict(self.headers.items())))
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        if path in site.fixed:
            status, ctype, body = site.fixed[path]
            self.reply(status, body, ctype)
        elif path == "/robots.txt":
            if site.robots.startswith("status:"):
                self.reply(int(site.robots[7:]), "no robots here")
            else:
                self.reply(200, site.robots, "text/plain; charset=utf-8")
        elif path == "/":
            links = "".join(
                f'<li><a href="/articles/{n}.html">{TOPICS[n % len(TOPICS)].title()} notes #{n}</a></li>'
                for n in range(1, site.articles + 1)
            )
            self.reply(
                200, f'<html lang="en"><head><title>{site.name}</title></head><body><ul>{links}</ul></body></html>'
            )
        elif path.startswith("/articles/") and path.endswith(".html"):
            number = path[len("/articles/") : -5]
            if number.isdigit() and 1 <= int(number) <= site.articles:
                self.reply(200, site.article(int(number)))
            else:
                self.reply(404, "<html><body>not found</body></html>")
        elif path == "/near-copy":  # article 1 with its last sentence changed: a near-duplicate
            page = site.article(1)
            cut = page.rindex("</p>")
            self.reply(200, page[:cut] + " One more sentence was added here." + page[cut:])
        elif path == "/private/secret.html":
            self.reply(200, site.article(1))
        elif path == "/sitemap.xml":
            self.reply(200, site.sitemap(list(range(1, site.articles + 1))), "application/xml")
        elif path == "/sitemap_index.xml":
            index = (
                f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<sitemap><loc>{site.base}/sitemap-a.xml</loc></sitemap>"
                f"<sitemap><loc>{site.base}/sitemap-b.xml.gz</loc></sitemap></sitemapindex>"
            )
            self.reply(200, index, "application/xml")
        elif path == "/sitemap-a.xml":
            self.reply(200, site.sitemap(list(range(1, site.articles // 2 + 1))), "application/xml")
        elif path == "/sitemap-b.xml.gz":
            xml = site.sitemap(list(range(site.articles // 2 + 1, site.articles + 1)))
            self.reply(200, gzip.compress(xml.encode()), "application/gzip")
        elif path in ("/feed.xml", "/atom.xml"):
            self.reply(
                200,
                self._feed(path == "/atom.xml"),
                "application/rss+xml" if path == "/feed.xml" else "application/atom+xml",
            )
        elif path.startswith("/redirect/"):
            k = int(path.rsplit("/", 1)[1])
            self.reply(302, "", headers={"Location": f"/redirect/{k - 1}" if k > 0 else "/articles/1.html"})
        elif path in ("/loop/a", "/loop/b"):
            self.reply(302, "", headers={"Location": "/loop/b" if path == "/loop/a" else "/loop/a"})
        elif path == "/redirect-to":
            self.reply(302, "", headers={"Location": query["url"]})
        elif path.startswith("/flaky/"):
            code = int(path.rsplit("/", 1)[1])
            if hits <= int(query.get("fail", "1")):
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                self.reply(code, f"<html><body>fault {code}</body></html>", headers=extra)
            else:
                self.reply(200, site.article(2))
        elif path.startswith("/status/"):
            self.reply(int(path.rsplit("/", 1)[1]), "<html><body>status</body></html>")
        elif path == "/slow":
            time.sleep(float(query.get("delay", "3")))
            self.reply(200, site.article(3))
        elif path == "/drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif path in ("/big", "/big-chunked"):
            self._big(int(query.get("mb", "10")), chunked=path == "/big-chunked")
        elif path == "/bomb":
            self.reply(200, bomb(), headers={"Content-Encoding": "gzip"})
        elif path == "/binary":
            self.reply(200, random.Random(7).randbytes(65536), "application/octet-stream")
        elif path == "/image.png":
            self.reply(
                200,
                bytes.fromhex(
                    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4d40000000049454e44ae426082"
                ),
                "image/png",
            )
        elif path == "/latin1":
            text = (
                "<html><head><title>Café</title></head><body><article><h1>Café crème</h1><p>"
                + "Le café crème et la crème brûlée à Nîmes, chez Müller et le señor. " * 8
                + "</p></article></body></html>"
            )
            self.reply(200, text.encode("latin-1"))
        elif path == "/cp1252-undeclared":
            text = (
                "<html><head><title>Prices</title></head><body><article><h1>Prices</h1><p>"
                + "The \u201cbest\u201d coffee costs 3 \u20ac \u2014 it\u2019s worth it. " * 8
                + "</p></article></body></html>"
            )
            self.reply(200, text.encode("cp1252"), "text/html")
        elif path == "/js-only":
            paragraphs = "".join(f"'<p>{p}</p>'+" for p in prose(99, 5))
            script = (
                "document.getElementById('app').innerHTML="
                f"'<article><h1>Rendered article</h1>'+{paragraphs}'</article>';"
            )
            self.reply(
                200,
                f'<html lang="en"><head><title>App</title></head><body><div id="app"></div>'
                f"<script>{script}</script></body></html>",
            )
        elif path == "/challenge":
            self.reply(
                503,
                "<html><head><title>Just a moment...</title></head><body><h1>Checking your browser before "
                "accessing the site.</h1><p>Enable JavaScript and cookies to continue.</p>"
                '<div id="challenge-form"></div></body></html>',
            )
        elif path == "/search":
            self._searxng(query)
        elif path == "/res/v1/web/search":
            self._brave(query)
        elif path == "/text.txt":
            self.reply(200, "\n\n".join(prose(5, 4)), "text/plain; charset=utf-8")
        elif path == "/charset":  # an article whose header names a charset Python should not use
            self.reply(200, site.ascii_article(4), f"text/html; charset={query['label']}")
        elif path == "/meta-charset":
            self.reply(200, f'<meta charset="{query["label"]}">' + site.ascii_article(5), "text/html")
        elif path == "/utf16":  # UTF-16LE with no byte-order mark and no label anywhere
            self.reply(200, site.ascii_article(6).encode("utf-16-le"), "text/html")
        elif path == "/sjis-as-latin1":
            self.reply(200, japanese_page().encode("shift_jis"), "text/html; charset=ISO-8859-1")
        elif path == "/drip":  # headers at once, then the body a byte every `every` seconds
            self._drip(site.article(7).encode(), float(query.get("every", "1")), headers_too=False)
        elif path == "/drip-headers":  # even the status line and headers come a byte at a time
            self._drip(site.article(7).encode(), float(query.get("every", "1")), headers_too=True)
        elif path == "/r":  # a query key without `=`: /r?a and /r?b are two pages, and /r?a redirects to /r?b
            if parts.query == "a":
                self.reply(302, "", headers={"Location": "/r?b"})
            else:
                self.reply(200, site.article(8) if parts.query == "b" else "<html><body>which?</body></html>")
        else:
            self.reply(404, "<html><body>not found</body></html>")

    # -- search backends' formats, answering from this site's own articles ------------------------------
    def _matches(self, query: str) -> list[int]:
        site = self.owner
        words = {w.lower() for w in query.split()}
        scored = [(len(words & set(TOPICS[n % len(TOPICS)].split())), n) for n in range(1, site.articles + 1)]
        found = [n for score, n in sorted(scored, key=lambda x: (-x[0], x[1])) if score > 0][:10]
        return found or list(range(1, min(3, site.articles) + 1))  # like a real engine: always something

    def _searxng(self, query: dict[str, str]) -> None:
        if query.get("format") != "json":
            self.reply(403, "<html><body><h1>Forbidden</h1></body></html>")
            return
        site = self.owner
        results = [
            {
                "url": f"{site.base}/articles/{n}.html",
                "title": f"{TOPICS[n % len(TOPICS)].title()} notes #{n}",
                "content": prose(n)[0][:160],
                "engine": "duckduckgo",
                "engines": ["duckduckgo"],
                "positions": [i + 1],
                "score": 1.0 / (i + 1),
                "category": "general",
                "template": "default.html",
                "publishedDate": None,
            }
            for i, n in enumerate(self._matches(query.get("q", "")))
        ]
        results += [{"url": url, "title": "extra", "content": "", "engine": "duckduckgo"} for url in site.extra_hits]
        body = {
            "query": query.get("q", ""),
            "number_of_results": 0,
            "results": results,
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }
        self.reply(200, json.dumps(body), "application/json")

    def _brave(self, query: dict[str, str]) -> None:
        site = self.owner
        if self.headers.get("X-Subscription-Token") != "test-key":
            error = {"id": "x", "status": 422, "code": "SUBSCRIPTION_TOKEN_INVALID", "detail": "bad token", "meta": {}}
            self.reply(422, json.dumps({"type": "ErrorResponse", "error": error, "time": 0}), "application/json")
            return
        if "ratelimit" in query.get("q", ""):
            error = {"id": "y", "status": 429, "code": "RATE_LIMITED", "detail": "Rate limit reached.", "meta": {}}
            self.reply(
                429,
                json.dumps({"type": "ErrorResponse", "error": error, "time": 0}),
                "application/json",
                headers={"X-RateLimit-Reset": "1, 1419704"},
            )
            return
        results = [
            {
                "title": f"<strong>{TOPICS[n % len(TOPICS)].title()}</strong> notes #{n}",
                "url": f"{site.base}/articles/{n}.html",
                "description": prose(n)[0][:160],
                "type": "search_result",
            }
            for n in self._matches(query.get("q", ""))[: int(query.get("count", "20"))]
        ]
        body = {
            "query": {"original": query.get("q", "")},
            "mixed": {"type": "mixed", "main": []},
            "type": "search",
            "web": {"type": "search", "results": results, "family_friendly": True},
        }
        self.reply(200, json.dumps(body), "application/json")

    def do_POST(self) -> None:
        site = self.owner
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        site._record(Request(time.monotonic(), "POST", self.path, dict(self.headers.items())))
        if urlsplit(self.path).path != "/html/":
            self.reply(404, "<html><body>not found</body></html>")
            return
        if "anomaly" in form.get("q", ""):
            self.reply(
                202,
                '<html><body><form id="challenge-form" action="//duckduckgo.com/anomaly.js?sv=html">'
                '<div class="anomaly-modal__modal"></div></form>error-lite@duckduckgo.com</body></html>',
            )
            return
        items = []
        for i, n in enumerate(self._matches(form.get("q", ""))):
            target = f"{site.base}/articles/{n}.html"
            href = target if i % 2 else "//duckduckgo.com/l/?uddg=" + quote(target, safe="") + "&rut=abc"
            items.append(
                f'<div class="result results_links results_links_deep web-result "><div class="links_main">'
                f'<h2 class="result__title"><a rel="nofollow" class="result__a" href="{href}">Notes #{n}</a></h2>'
                f'<a class="result__snippet" href="{href}">{prose(n)[0][:120]}</a></div></div>'
            )
        self.reply(200, f'<html><body><div id="links" class="results">{"".join(items)}</div></body></html>')

    def _feed(self, atom: bool) -> str:
        site = self.owner
        numbers = range(1, min(10, site.articles) + 1)
        if atom:
            entries = "".join(
                f'<entry><title>Article {n}</title><link href="{site.base}/articles/{n}.html"/>'
                f"<updated>2024-01-{n:02d}T00:00:00Z</updated></entry>"
                for n in numbers
            )
            return f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>{site.name}</title>{entries}</feed>'
        items = "".join(
            f"<item><title>Article {n}</title><link>{site.base}/articles/{n}.html</link>"
            f"<pubDate>Mon, {n:02d} Jan 2024 00:00:00 GMT</pubDate></item>"
            for n in numbers
        )
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{site.name}</title>{items}</channel></rss>'

    def _drip(self, body: bytes, every: float, *, headers_too: bool) -> None:
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        data = head + body
        try:
            if not headers_too:
                self.wfile.write(head)
                data = body
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(every)
        except OSError:  # the client gave up on us, as it should
            self.close_connection = True

    def _big(self, megabytes: int, *, chunked: bool) -> None:
        block = ("<p>" + "filler text " * 85 + "</p>\n").encode()  # about 1 KiB
        total = megabytes * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        sent = 0
        try:
            while sent < total:
                piece = block[: total - sent]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading, as it should


@pytest.fixture
def website() -> Iterator[Site]:
    with Site() as site:
        yield site


@pytest.fixture
def websites() -> Iterator[Callable[..., Site]]:
    started: list[Site] = []

    def factory(**kwargs: object) -> Site:
        site = Site(**kwargs).start()  # type: ignore[arg-type]
        started.append(site)
        return site

    yield factory
    for site in started:
        site.stop()


Site.handler = _Handler
