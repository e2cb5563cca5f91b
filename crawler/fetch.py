"""Fetching one URL politely: robots.txt, the SSRF guard, per-host limits, retries and every limit.

`Fetcher.fetch(url)` never raises: it returns a `FetchResult` whose `error` is a reason code (see
`reasons`) when no usable page came back — `internal_error`, with the exception, for a fault of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from crawler import reasons
from crawler.decode import BadContentEncoding, TooLarge, read_body
from crawler.discover import DISCOVERY_TYPES
from crawler.guard import AddressPolicy, BlockedAddress, DNSFailure, GuardedTransport
from crawler.hosts import HostGates
from crawler.reasons import Reason
from crawler.retry import backoff, retry_after_seconds
from crawler.robots import RobotsCache
from crawler.settings import CrawlSettings
from crawler.urls import BadURL, canonicalise, host_key

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_ROBOTS_REDIRECTS = 5  # RFC 9309: follow at least five
_CHALLENGE_MARKERS = (
    b"just a moment",
    b"checking your browser",
    b"challenge-form",
    b"cf-challenge",
    b"captcha",
    b"are you a robot",
    b"enable javascript and cookies",
)


@dataclass
class FetchResult:
    url: str
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    charset: str | None = None
    body: bytes | None = None
    attempts: int = 0
    elapsed: float = 0.0
    redirects: list[str] = field(default_factory=list)
    error: str | None = None
    detail: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # for the page's metadata (a capped Crawl-delay, …)


class _Failure(Exception):
    def __init__(self, reason: str, detail: str, status: int | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.status = reason, detail, status


class _Deadline:
    """The network time one fetch has left (settings.fetch_deadline): each request's headers and each
    body read spend from it, so a server dripping bytes ends as a timeout however it drips."""

    def __init__(self, seconds: float):
        self.total = self.left = seconds

    @contextlib.asynccontextmanager
    async def spend(self) -> AsyncIterator[None]:
        if self.left <= 0:
            raise _Failure(Reason.TIMEOUT, f"the fetch used up its {self.total:g}s deadline")
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.left):
                yield
        except TimeoutError as exc:
            raise _Failure(Reason.TIMEOUT, f"the fetch used up its {self.total:g}s deadline") from exc
        finally:
            self.left -= time.monotonic() - started


async def _hold_location(response: httpx.Response) -> None:
    """A response hook: takes a redirect's Location away from httpx, which otherwise builds the next
    request from it even when not following redirects — and raises, losing the response, for a Location
    it cannot parse (`data:`, `javascript:`, `http://0177.0.0.1/`). The fetcher reads it instead."""
    if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
        response.extensions["location"] = response.headers["location"]
        del response.headers["location"]


def looks_like_challenge(body: bytes) -> bool:
    head = body[:20_000].lower()
    return sum(marker in head for marker in _CHALLENGE_MARKERS) >= 2


class Fetcher:
    """One shared HTTP client, robots cache and set of host gates for a whole crawl.

    async with Fetcher(CrawlSettings(allow_private=True)) as fetcher:
        result = await fetcher.fetch("http://127.0.0.1:8000/articles/1.html")
    """

    def __init__(self, settings: CrawlSettings):
        self.settings = settings
        self.policy = AddressPolicy(settings.allow_private, settings.allowed_networks)
        # One client per host, each with a pool as big as that host's connection limit: httpcore scans
        # its whole pool for every request, so one big shared pool costs O(connections) per request
        # (it was half the crawl's CPU at 64 connections).
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._ssl = httpx.create_ssl_context(trust_env=False)
        self.gates = HostGates(settings.host_concurrency, settings.host_interval())
        self.robots = RobotsCache(self._fetch_robots, settings.user_agent, settings.robots_ttl, settings.robots_retry)

    def client(self, host: str) -> httpx.AsyncClient:
        client = self._clients.get(host)
        if client is None:
            size = self.settings.host_concurrency + 1  # + robots.txt
            client = self._clients[host] = httpx.AsyncClient(
                transport=GuardedTransport(
                    self.policy, httpx.Limits(max_connections=size, max_keepalive_connections=size), self._ssl
                ),
                timeout=httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout, pool=None),
                headers={
                    "User-Agent": self.settings.user_agent,
                    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1",
                    "Accept-Encoding": "gzip, deflate",
                },
                follow_redirects=False,
                event_hooks={"response": [_hold_location]},
            )
        return client

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # -- one page ----------------------------------------------------------------------------------
    async def fetch(self, url: str) -> FetchResult:
        started = time.monotonic()
        result = FetchResult(url=url)
        try:
            await self._fetch_following_redirects(url, result, _Deadline(self.settings.fetch_deadline))
        except _Failure as failure:
            result.error, result.detail = failure.reason, failure.detail
            if failure.status is not None:
                result.status = failure.status
        except Exception as exc:  # a fault of ours, or a library's, on this URL: its row says so, the crawl goes on
            result.error, result.detail = Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
        result.elapsed = time.monotonic() - started
        return result

    async def _fetch_following_redirects(self, url: str, result: FetchResult, deadline: _Deadline) -> None:
        try:
            current = canonicalise(url)
        except BadURL as exc:
            raise _Failure(Reason.BAD_URL, str(exc)) from exc
        seen = {current}
        for _ in range(self.settings.max_redirects + 1):
            rules = await self.robots.rules_for(current)
            if rules.unreachable:
                reason, _, why = rules.unreachable.partition(":")
                raise _Failure(reason, f"robots.txt of {host_key(current)}: {why or reason}")
            if not rules.allowed(current, self.settings.user_agent):
                raise _Failure(Reason.ROBOTS_DISALLOWED, f"robots.txt disallows {current}")
            self._obey_crawl_delay(current, rules.crawl_delay(self.settings.user_agent), result)
            response = await self._request_with_retries(current, result, deadline)
            try:
                result.final_url, result.status = current, response.status_code
                location = response.extensions.get("location")
                if response.status_code in REDIRECT_STATUSES and location is not None:
                    try:
                        target = canonicalise(location, current)
                    except BadURL as exc:
                        raise _Failure(
                            Reason.BAD_REDIRECT, f"redirect to {location[:300]!r}: {exc}", response.status_code
                        ) from exc
                    if target in seen:
                        raise _Failure(Reason.REDIRECT_LOOP, f"{current} → {target} was visited", response.status_code)
                    seen.add(target)
                    result.redirects.append(target)
                    current = target
                    continue
                await self._read(response, result, deadline)
                return
            finally:
                await response.aclose()
        raise _Failure(Reason.TOO_MANY_REDIRECTS, f"more than {self.settings.max_redirects} redirects")

    def _obey_crawl_delay(self, url: str, asked: float, result: FetchResult) -> None:
        delay = min(asked, self.settings.max_crawl_delay) if asked == asked else 0.0  # NaN: no delay asked
        if delay < asked:
            result.notes["crawl_delay"] = {"asked": asked, "used": delay}
        self.gates[host_key(url)].set_crawl_delay(delay)

    async def _read(self, response: httpx.Response, result: FetchResult, deadline: _Deadline) -> None:
        media = response.headers.get("content-type", "")
        mime = media.split(";", 1)[0].strip().lower()
        result.content_type = mime or None
        result.charset = response.charset_encoding
        if response.status_code >= 400:
            body = await self._read_capped(response, min(self.settings.max_bytes, 200_000), deadline)
            if response.status_code in (403, 429, 503) and looks_like_challenge(body):
                raise _Failure(Reason.BOT_CHALLENGE, "the site answered with a bot challenge", response.status_code)
            raise _Failure(reasons.http(response.status_code), response.reason_phrase, response.status_code)
        if mime and mime not in self.settings.content_types and mime not in DISCOVERY_TYPES:
            raise _Failure(Reason.NOT_HTML, f"content type {mime}")
        result.body = await self._read_capped(response, self.settings.max_bytes, deadline)
        if not mime and b"<html" not in result.body[:2048].lower():
            raise _Failure(Reason.NOT_HTML, "no content type and no HTML")

    async def _read_capped(self, response: httpx.Response, cap: int, deadline: _Deadline) -> bytes:
        try:
            async with deadline.spend():
                return await read_body(response, cap)
        except TooLarge as exc:
            raise _Failure(Reason.TOO_LARGE, str(exc), response.status_code) from exc
        except BadContentEncoding as exc:
            raise _Failure(Reason.BAD_ENCODING, str(exc), response.status_code) from exc
        except httpx.TimeoutException as exc:
            raise _Failure(Reason.TIMEOUT, f"reading the body timed out: {exc!r}", response.status_code) from exc
        except httpx.TransportError as exc:
            raise _Failure(Reason.CONNECTION_ERROR, f"reading the body failed: {exc!r}", response.status_code) from exc

    # -- retries ---------------------------------------------------------------------------------------
    async def _request_with_retries(self, url: str, result: FetchResult, deadline: _Deadline) -> httpx.Response:
        """Send GET until it gets a response worth keeping; retries 408/429/5xx, timeouts and drops."""
        gate = self.gates[host_key(url)]
        last: _Failure | None = None
        for attempt in range(self.settings.max_retries + 1):
            wait = None
            result.attempts += 1
            try:
                async with gate.slot(), deadline.spend():
                    client = self.client(host_key(url))
                    response = await client.send(client.build_request("GET", url), stream=True)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:  # what canonicalise let through
                raise _Failure(Reason.BAD_URL, f"{type(exc).__name__}: {exc}") from exc
            except BlockedAddress as exc:
                raise _Failure(Reason.BLOCKED_PRIVATE, str(exc)) from exc
            except DNSFailure as exc:
                raise _Failure(Reason.DNS_ERROR, str(exc)) from exc
            except httpx.TimeoutException as exc:
                last = _Failure(Reason.TIMEOUT, f"{type(exc).__name__} on {url}")
            except httpx.TransportError as exc:
                last = _Failure(Reason.CONNECTION_ERROR, f"{type(exc).__name__}: {exc}")
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                wait = retry_after_seconds(response.headers.get("retry-after"))
                last = _Failure(reasons.http(response.status_code), response.reason_phrase, response.status_code)
                try:
                    async with deadline.spend():
                        body = await read_body(response, 200_000)
                except (TooLarge, BadContentEncoding, httpx.HTTPError):
                    body = b""
                finally:
                    await response.aclose()
                if looks_like_challenge(body):  # retrying a challenge only annoys the site
                    raise _Failure(Reason.BOT_CHALLENGE, "the site answered with a bot challenge", response.status_code)
                if response.status_code == 429:
                    gate.slow_down(self.settings.slowdown_429, self.settings.max_host_interval)
                if wait is not None and wait > self.settings.max_retry_after:
                    last.detail = (
                        f"Retry-After {wait:.0f}s is longer than we wait ({self.settings.max_retry_after:.0f}s)"
                    )
                    raise last
            if attempt == self.settings.max_retries:
                break
            await asyncio.sleep(wait if wait is not None else self._backoff(attempt))
        assert last is not None
        last.detail = f"{last.detail} (after {result.attempts} attempts)"
        raise last

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self.settings.backoff_base, self.settings.backoff_max)

    # -- robots.txt ------------------------------------------------------------------------------------
    async def _fetch_robots(self, url: str) -> tuple[int | None, str, str | None]:
        deadline = _Deadline(self.settings.fetch_deadline)
        try:
            for _ in range(_ROBOTS_REDIRECTS + 1):
                async with self.gates[host_key(url)].slot(), deadline.spend():
                    client = self.client(host_key(url))
                    response = await client.send(client.build_request("GET", url), stream=True)
                try:
                    location = response.extensions.get("location")
                    if response.status_code in REDIRECT_STATUSES and location is not None:
                        url = canonicalise(location, url)
                        continue
                    async with deadline.spend():  # as Google: the first 500 KiB
                        body = await read_body(response, 512 * 1024, truncate=True)
                finally:
                    await response.aclose()
                return response.status_code, body.decode("utf-8", errors="replace"), None
            return None, "", Reason.TOO_MANY_REDIRECTS
        except BadURL:
            return None, "", Reason.BAD_REDIRECT
        except _Failure as failure:
            return None, "", failure.reason
        except BadContentEncoding:
            return None, "", Reason.BAD_ENCODING
        except BlockedAddress:
            return None, "", Reason.BLOCKED_PRIVATE
        except DNSFailure:
            return None, "", Reason.DNS_ERROR
        except httpx.TimeoutException:
            return None, "", Reason.TIMEOUT
        except httpx.HTTPError:
            return None, "", Reason.CONNECTION_ERROR
