"""The bundled sample website `swarm demo` reads, served on loopback: original articles across ten topics,
with a home page, topic pages, a sitemap, an RSS feed, robots.txt and a SearXNG-compatible JSON search
endpoint, so discovery by search runs for real with no network.

    with SampleSite() as site:
        site.base                       # http://127.0.0.1:<port>
        # SEARXNG_URL=site.base → swarm's searxng backend searches it

Written on the standard library's threaded HTTP server: it serves a few hundred requests from one
process on loopback, and a web framework would be a dependency for nothing.
"""

from agents.sample_site.server import Article, SampleSite, load_articles

__all__ = ["Article", "SampleSite", "load_articles"]
