"""Reason codes stored in `pages.error`: short, stable, countable (`error, count(*) … GROUP BY error`)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a page failed; a str, so it is stored, compared and counted as the code itself."""

    ROBOTS_DISALLOWED = "robots_disallowed"
    ROBOTS_UNAVAILABLE = "robots_unavailable"  # robots.txt answered 5xx or not at all: RFC 9309 says wait
    BLOCKED_PRIVATE = "blocked_private_address"
    BAD_URL = "bad_url"  # a URL that cannot be fetched (no host, impossible port, ambiguous IPv4, not http(s))
    BAD_REDIRECT = "bad_redirect"  # a redirect to such a URL (data:, javascript:, http:///path, …)
    DNS_ERROR = "dns_error"
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    NOT_HTML = "not_html"
    BAD_ENCODING = "bad_content_encoding"
    BAD_CHARSET = "bad_charset"  # no charset, declared or detected, gives readable text
    REDIRECT_LOOP = "redirect_loop"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    EXTRACT_FAILED = "extract_failed"
    EXTRACT_TIMEOUT = "extract_timeout"
    TOO_SHORT = "too_short"
    BOT_CHALLENGE = "bot_challenge"
    BOILERPLATE = "boilerplate"
    WRONG_LANGUAGE = "wrong_language"
    DUPLICATE = "duplicate_content"
    RENDER_FAILED = "render_failed"
    # a fault of ours met on this page: the detail has the exception; the crawl went on
    INTERNAL_ERROR = "internal_error"


def http(status: int) -> str:
    """`http_<status>`: one code per status, so not a member of Reason."""
    return f"http_{status}"


# failures that may be gone by a later try: the network, the server or our own pool was the trouble
_TRANSIENT = {
    Reason.ROBOTS_UNAVAILABLE,
    Reason.DNS_ERROR,
    Reason.CONNECTION_ERROR,
    Reason.TIMEOUT,
    Reason.EXTRACT_FAILED,
    Reason.EXTRACT_TIMEOUT,
    Reason.RENDER_FAILED,
}


def transient(reason: str | None) -> bool:
    """Whether a page that failed for `reason` is worth fetching again later (5xx, 429, timeouts, …)."""
    if reason is None:
        return False
    return reason in _TRANSIENT or reason in ("http_408", "http_425", "http_429") or reason.startswith("http_5")
