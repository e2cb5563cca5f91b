"""Discovery documents: sitemaps (urlset, index, .gz) and RSS/Atom/JSON feeds, parsed with
trafilatura's own sitemap and feed modules but fetched by our polite fetcher.

A crawl meets them as seeds (or links); their URLs join the frontier at the same depth, since a
sitemap or a feed is a list of pages rather than a page.
"""

from __future__ import annotations

import gzip
import zlib
from urllib.parse import urlsplit

from courlan import extract_domain
from trafilatura.feeds import FeedParameters, find_links
from trafilatura.sitemaps import DETECT_SITEMAP_LINK, SitemapObject

from crawler.urls import canonical

XML_TYPES = ("application/xml", "text/xml", "application/rss+xml", "application/atom+xml", "application/feed+json")
GZIP_TYPES = ("application/gzip", "application/x-gzip")
DISCOVERY_TYPES = XML_TYPES + GZIP_TYPES


class _Sitemap(SitemapObject):
    """trafilatura's sitemap parser with our URL handling: its own drops every link whose host has no
    registrable domain (an IP address, like the local test sites), and scope is the crawl's business."""

    __slots__ = ()

    def handle_link(self, link: str) -> None:
        absolute = canonical(link, self.current_url)
        if absolute is None or absolute == self.current_url:
            return
        (self.sitemap_urls if DETECT_SITEMAP_LINK.search(absolute) else self.urls).append(absolute)


def is_discovery(content_type: str | None, url: str) -> bool:
    path = urlsplit(url).path.lower()
    return (content_type or "") in DISCOVERY_TYPES or path.endswith((".xml", ".xml.gz", ".rss", ".atom"))


def gunzip_capped(body: bytes, max_bytes: int) -> bytes:
    """A gzipped sitemap, decompressed no further than `max_bytes` (bomb-safe)."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, max_bytes)
    except (zlib.error, gzip.BadGzipFile):
        return b""


def parse(url: str, body: bytes, max_bytes: int) -> tuple[str, list[str], list[str]]:
    """(kind, page URLs, further sitemap URLs) found in a sitemap or feed document."""
    text = gunzip_capped(body, max_bytes).decode("utf-8", errors="replace")
    head = text[:2000].lower()
    domain = extract_domain(url, fast=True) or urlsplit(url).hostname or ""
    if "<urlset" in head or "<sitemapindex" in head:
        sitemap = _Sitemap(url, domain, [], external=True)
        sitemap.current_url, sitemap.content = url, text
        sitemap.process()
        return "sitemap", list(dict.fromkeys(sitemap.urls)), list(dict.fromkeys(sitemap.sitemap_urls))
    params = FeedParameters(url, domain, url, external=True)
    found = (canonical(link, url) for link in find_links(text.strip(), params))
    links = [link for link in found if link is not None and link != url]
    return ("feed" if links else "unknown"), list(dict.fromkeys(links)), []
