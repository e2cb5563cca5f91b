"""The sample site's pages, feeds and search, rendered from `articles.jsonl`."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from email.utils import format_datetime
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape as xml_escape

from agents.reading import bm25, words
from agents.sample_site.loopback import LoopbackServer, OwnedHandler


@dataclass(frozen=True)
class Article:
    slug: str
    topic: str
    title: str
    author: str
    date: str
    summary: str
    paragraphs: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"/articles/{self.slug}.html"

    @property
    def text(self) -> str:
        return "\n".join((self.title, self.summary, *self.paragraphs))


def load_articles() -> list[Article]:
    source = resources.files("agents.sample_site") / "articles.jsonl"
    articles = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            articles.append(Article(**{**row, "paragraphs": tuple(row["paragraphs"])}))
    return sorted(articles, key=lambda a: (a.date, a.slug), reverse=True)


def topic_slug(topic: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")


_STYLE = "body{font-family:sans-serif;max-width:42rem;margin:2rem auto;line-height:1.5}nav a{margin-right:1rem}"


class SampleSite(LoopbackServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.articles = load_articles()
        self.by_slug = {a.slug: a for a in self.articles}
        self.topics = sorted({a.topic for a in self.articles})
        self._index = [words(a.text) for a in self.articles]
        super().__init__(host, port)
        self.requests = 0

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- search -----------------------------------------------------------------------------------------
    def search(self, query: str, count: int = 10) -> list[Article]:
        scores = bm25(words(query), self._index)
        ranked = sorted(range(len(self.articles)), key=lambda i: -scores[i])
        return [self.articles[i] for i in ranked[:count] if scores[i] > 0]

    # -- pages ------------------------------------------------------------------------------------------
    def _page(self, title: str, body: str, description: str = "", extra_head: str = "") -> str:
        nav = "".join(f'<a href="/topics/{topic_slug(t)}/">{escape(t.title())}</a>' for t in self.topics)
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="description" content="{escape(description)}">{extra_head}'
            f'<link rel="alternate" type="application/rss+xml" href="/feed.xml"><style>{_STYLE}</style></head>'
            f'<body><header><a href="/">Field Notes</a><nav>{nav}</nav></header><main>{body}</main>'
            "<footer><p>Field Notes is a sample site bundled with persona-swarm.</p></footer></body></html>"
        )

    def _listing(self, articles: list[Article]) -> str:
        return (
            "<ul>"
            + "".join(
                f'<li><a href="{a.path}">{escape(a.title)}</a> <small>{a.date}</small><p>{escape(a.summary)}</p></li>'
                for a in articles
            )
            + "</ul>"
        )

    def home(self) -> str:
        return self._page("Field Notes", "<h1>Field Notes</h1><h2>Latest</h2>" + self._listing(self.articles[:15]))

    def topic(self, slug: str) -> str | None:
        topic = next((t for t in self.topics if topic_slug(t) == slug), None)
        if topic is None:
            return None
        articles = [a for a in self.articles if a.topic == topic]
        return self._page(topic.title(), f"<h1>{escape(topic.title())}</h1>" + self._listing(articles))

    def article(self, slug: str) -> str | None:
        a = self.by_slug.get(slug)
        if a is None:
            return None
        related = [r for r in self.articles if r.topic == a.topic and r.slug != a.slug][:4]
        body = (
            f'<article><h1>{escape(a.title)}</h1><p class="byline">By {escape(a.author)}, '
            f'<time datetime="{a.date}">{a.date}</time> in <a href="/topics/{topic_slug(a.topic)}/">'
            f"{escape(a.topic)}</a></p><p><em>{escape(a.summary)}</em></p>"
            + "".join(f"<p>{escape(p)}</p>" for p in a.paragraphs)
            + "</article><aside><h2>Related</h2>"
            + "".join(f'<p><a href="{r.path}">{escape(r.title)}</a></p>' for r in related)
            + "</aside>"
        )
        head = (
            f'<meta name="author" content="{escape(a.author)}">'
            f'<meta property="article:published_time" content="{a.date}">'
        )
        return self._page(a.title, body, a.summary, head)

    def sitemap(self) -> str:
        urls = [("/", self.articles[0].date)] + [(f"/topics/{topic_slug(t)}/", None) for t in self.topics]
        urls += [(a.path, a.date) for a in self.articles]
        items = "".join(
            f"<url><loc>{self.base}{path}</loc>" + (f"<lastmod>{date}</lastmod>" if date else "") + "</url>"
            for path, date in urls
        )
        return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>'

    def feed(self) -> str:
        def when(date: str) -> str:
            return format_datetime(dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC))

        items = "".join(
            f"<item><title>{xml_escape(a.title)}</title><link>{self.base}{a.path}</link>"
            f"<guid>{self.base}{a.path}</guid><pubDate>{when(a.date)}</pubDate>"
            f"<description>{xml_escape(a.summary)}</description></item>"
            for a in self.articles[:20]
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Field Notes</title>'
            f"<link>{self.base}/</link><description>Practical notes on ten hobbies and crafts</description>"
            f"{items}</channel></rss>"
        )

    def searxng(self, query: str, count: int = 10) -> dict[str, Any]:
        hits = self.search(query, count)
        return {
            "query": query,
            "number_of_results": len(hits),
            "results": [
                {
                    "url": f"{self.base}{a.path}",
                    "title": a.title,
                    "content": a.summary,
                    "engine": "fieldnotes",
                    "engines": ["fieldnotes"],
                    "positions": [i + 1],
                    "score": round(1.0 / (i + 1), 4),
                    "category": "general",
                    "publishedDate": f"{a.date}T00:00:00",
                }
                for i, a in enumerate(hits)
            ],
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }

    def robots(self) -> str:
        return f"User-agent: *\nAllow: /\nDisallow: /search\nSitemap: {self.base}/sitemap.xml\n"


class _Handler(OwnedHandler):
    owner: SampleSite

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        site = self.owner
        site.requests += 1
        parts = urlsplit(self.path)
        path = parts.path
        page: str | None = None
        if path == "/":
            page = site.home()
        elif path.startswith("/topics/"):
            page = site.topic(path[len("/topics/") :].strip("/"))
        elif path.startswith("/articles/") and path.endswith(".html"):
            page = site.article(path[len("/articles/") : -len(".html")])
        elif path == "/robots.txt":
            self.reply(200, site.robots(), "text/plain; charset=utf-8")
            return
        elif path == "/sitemap.xml":
            self.reply(200, site.sitemap(), "application/xml; charset=utf-8")
            return
        elif path == "/feed.xml":
            self.reply(200, site.feed(), "application/rss+xml; charset=utf-8")
            return
        elif path == "/search":
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if query.get("format") != "json":
                self.reply(403, "<h1>Forbidden</h1><p>Ask for format=json.</p>", "text/html; charset=utf-8")
            else:
                self.reply(200, json.dumps(site.searxng(query.get("q", ""))), "application/json; charset=utf-8")
            return
        if page is None:
            self.reply(404, site._page("Not found", "<h1>Not found</h1>"), "text/html; charset=utf-8")
        else:
            self.reply(200, page, "text/html; charset=utf-8")


SampleSite.handler = _Handler
