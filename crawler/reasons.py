"""Reason codes stored in `pages.error`: short, stable, countable (`error, count(*) … GROUP BY error`)."""

from __future__ import annotations

ROBOTS_DISALLOWED = "robots_disallowed"
ROBOTS_UNAVAILABLE = "robots_unavailable"  # robots.txt answered 5xx or not at all: RFC 9309 says wait
BLOCKED_PRIVATE = "blocked_private_address"
BAD_SCHEME = "bad_scheme"
BAD_URL = "bad_url"
DNS_ERROR = "dns_error"
CONNECTION_ERROR = "connection_error"
TIMEOUT = "timeout"
TOO_LARGE = "too_large"
NOT_HTML = "not_html"
BAD_ENCODING = "bad_content_encoding"
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


def http(status: int) -> str:
    return f"http_{status}"
