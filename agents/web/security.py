"""What keeps the view to the person who started it: loopback unless a token guards it, no request that
another site's page made, and the security headers on every answer (docs/web.md lists the rules)."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agents.web.pages import with_params

TOKEN_COOKIE = "swarm_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether `host` (as given to --host) is this machine only."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Security:
    """Every request passes here first (inside the Host check): requests that another site's page made are
    refused, the token is asked for when one is set (an `Authorization: Bearer` header, the cookie, or
    `?token=` once), and every answer, an error's too, gets the security headers."""

    def __init__(self, app: ASGIApp, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = self._refused(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        started = False

        async def secured_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in _HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, secured_send)
        except Exception:
            if started:
                raise
            # the error's own answer, with the headers (Starlette's outer handler would send it bare)
            await _secured(PlainTextResponse("Internal Server Error", status_code=500))(scope, receive, send)
            raise

    def _refused(self, request: Request) -> Response | None:
        # a page of another site may send requests here (a browser lets it, and times the answers even
        # when it cannot read them): browsers say where a request comes from; people and scripts send
        # none or "none" (an address typed, a link opened from the terminal)
        if request.headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
            return _secured(PlainTextResponse(
                "refused: this request came from another site's page. Open the view's address yourself.",
                status_code=403))  # fmt: skip
        if self.token is None:
            return None
        cookie = f"{TOKEN_COOKIE}_{request.url.port or 80}"  # cookies ignore ports: one a server
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            # the token leaves the address bar (and the history) for an HttpOnly cookie; the path is this
            # server's own (a leading "//" would make it another host's)
            response = RedirectResponse("/" + with_params(request).lstrip("/"), status_code=303)
            response.set_cookie(cookie, self.token, httponly=True, samesite="strict")
            return _secured(response)
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        offered = credentials.strip() if scheme.lower() == "bearer" else request.cookies.get(cookie)
        if offered and hmac.compare_digest(offered.encode(), self.token.encode()):
            return None
        return _secured(PlainTextResponse(
            "a token is needed: open the address swarm serve printed with ?token=…, or send "
            "Authorization: Bearer <token>", status_code=401))  # fmt: skip


def _secured(response: Response) -> Response:
    response.headers.update(_HEADERS)
    return response


_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
