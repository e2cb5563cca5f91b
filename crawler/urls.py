"""URLs: one canonical form per page, and a clear reason for every URL that cannot be fetched.

The canonical form is the crawl's identity for a page (fetched once, cached, stored): scheme and host
lower-cased, internationalised hosts in their ASCII (punycode) form, default ports, fragments, user
names and passwords dropped, dot segments resolved, unsafe characters percent-encoded, tracking
parameters (courlan's list) dropped and the rest sorted by name.

This is urllib.parse with a few rules rather than courlan's `clean_url`: courlan cleans links mined
from text, and for a crawl's identity it merges distinct URLs (a query key without `=` is dropped, so
`/r?a` and `/r?b` are one URL), rewrites hosts (`a b.com` becomes `ab.com`) and keeps credentials.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urljoin, urlsplit

from courlan.clean import TRACKERS_RE

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG: a host whose last label is a number is an IPv4 address, in whatever form (0177.0.0.1,
# 0x7f.1, 2130706433). Browsers and resolvers read those forms differently: only the dotted quad passes.
_NUMERIC_LAST_LABEL = re.compile(r"(?:^|\.)(?:0x[0-9a-f]*|[0-9]+)\.?$")
_DROPPED = re.compile(r"[\t\n\r]")  # removed anywhere in a URL, as browsers do
_EDGES = "".join(map(chr, range(0x21)))  # control characters and spaces, trimmed from both ends
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class BadURL(ValueError):
    """A URL that cannot be fetched; the message says why. `web` is False for another scheme's URL
    (mailto:, javascript:, data:, …): a link to one is not a page, a seed or redirect to one is bad."""

    def __init__(self, message: str, *, web: bool = True):
        super().__init__(message)
        self.web = web


def canonicalise(url: str, base: str | None = None) -> str:
    """The canonical absolute http(s) form of `url` (resolved against `base`), or BadURL saying why
    there is none."""
    text = _DROPPED.sub("", url).strip(_EDGES)
    try:
        given = urlsplit(text)
        if given.scheme and text[len(given.scheme) + 1 :].startswith("//") and not given.netloc:
            raise BadURL("no host")  # `http:///path`: urljoin would quietly take the base's host
        parts = urlsplit(urljoin(base, text)) if base else given
        port = parts.port
    except ValueError as exc:  # an IPv6 literal without its bracket, a port that is not a number…
        raise BadURL(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BadURL(f"not an http(s) URL (scheme {scheme!r})" if scheme else "not an absolute URL", web=not scheme)
    host = _host(parts.hostname or "", parts.netloc)
    if port == 0:
        raise BadURL("port 0")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = quote(_resolve_dots(parts.path), safe=_PATH_SAFE) or "/"
    query = _query(parts.query)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def canonical(url: str, base: str | None = None) -> str | None:
    """`canonicalise`, or None for a URL that cannot be fetched."""
    try:
        return canonicalise(url, base)
    except BadURL:
        return None


def joined(url: str, base: str) -> str:
    """`url` resolved against `base` as far as it can be: for showing a URL that cannot be fetched."""
    try:
        return urljoin(base, url.strip())
    except ValueError:
        return url.strip()


def redacted(url: str) -> str:
    """`url` as it may be stored or shown: without a user name or password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//", url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def _host(host: str, netloc: str) -> str:
    if not host:
        raise BadURL("no host")
    if "[" in netloc:  # an IPv6 literal
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise BadURL(f"bad IPv6 address {host!r}") from None
    if _NUMERIC_LAST_LABEL.search(host):
        try:
            return str(ipaddress.IPv4Address(host.rstrip(".")))
        except ValueError:
            raise BadURL(f"ambiguous IPv4 address {host!r} (only the dotted quad, without leading zeros)") from None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise BadURL(f"bad host name {host!r}: {exc}") from None
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise BadURL(f"bad host name {host!r}")
    return host.rstrip(".")


def _resolve_dots(path: str) -> str:
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) if out != [""] else "/"


def _query(query: str) -> str:
    """The query without tracking parameters, its parameters sorted by name (a stable sort, so repeated
    names keep their order) and each kept as written, `key` without `=` included."""
    if not query:
        return ""
    kept = [p for p in query.split("&") if p and not TRACKERS_RE.search(p.split("=", 1)[0].lower())]
    kept.sort(key=lambda p: p.split("=", 1)[0])
    return quote("&".join(kept), safe=_QUERY_SAFE)


def host_key(url: str) -> str:
    """host[:port]: the unit of politeness (a port is another server). Never raises: a URL with a
    port that is not one keys on its host as written."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return url.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].lower()
    return f"{host}:{port}" if port else host


def same_site(url: str, seed: str) -> bool:
    return host_key(url) == host_key(seed)


def same_host(url: str, seed: str) -> bool:
    """Whether the two URLs name the same host, whatever their ports (even a port that is not one)."""
    return _hostname(url) == _hostname(seed) != ""


def _hostname(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
