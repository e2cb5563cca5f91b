"""URL normalisation and scope, with courlan doing the cleaning (tracking parameters, case, ports)."""

from __future__ import annotations

from urllib.parse import urldefrag, urljoin, urlsplit

from courlan import clean_url, normalize_url


def canonical(url: str, base: str | None = None) -> str | None:
    """An absolute http(s) URL without fragment or tracking parameters, or None if there is none."""
    try:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        absolute = urldefrag(absolute)[0]
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        if ".." in parts.path.split("/"):
            absolute = urljoin(absolute, parts.path)  # resolves dot segments the join did not
            if parts.query:
                absolute += "?" + parts.query
        cleaned = clean_url(absolute) or absolute
        return normalize_url(cleaned, strict=False)
    except ValueError:
        return None


def host_key(url: str) -> str:
    """host[:port]: the unit of politeness (a port is another server)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def same_site(url: str, seed: str) -> bool:
    return host_key(url) == host_key(seed)
