"""`swarm serve`: a read-only web app over the database (Starlette, Jinja2, uvicorn).

Every request opens its own sealed read-only connection (no file but the database, no network, the
configuration locked, see storage.Database.read) and closes it before answering, so a run writing the
same file waits at most one request. Text from the web or a model reaches the page only through
Jinja2's autoescaping, and the Content-Security-Policy runs no script but the app's own file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import ipaddress
import re
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from agents.cli.output import dumps, plain, write_rows
from agents.web import charts, data
from storage import Database, QueryTimeout, run_query
from storage.errors import DatabaseBusy, DatabaseMissing, SwarmError

HERE = Path(__file__).resolve().parent
SQL_ROWS_SHOWN = 1000  # rows the SQL page shows
SQL_ROWS_SENT = 100_000  # rows /api/sql answers at most (held in memory to answer): swarm query has no bound
SQL_TIMEOUT_S = 10.0
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


_CITATION = re.compile(r"\[(\d{1,3})\]")


def page_link(n: int, source: dict[str, Any]) -> str | None:
    """Where the view's [n] leads: the stored page source n was."""
    return f"/pages/{source['page_id']}" if source.get("page_id") else None


def cited(
    text: str, numbered: dict[int, dict[str, Any]], link: Callable[[int, dict[str, Any]], str | None] = page_link
) -> Markup:
    """A message's text, escaped, with each [n] a link (`link`) to what source n was."""
    out, last = [], 0
    for match in _CITATION.finditer(text):
        out.append(str(escape(text[last : match.start()])))
        n = int(match.group(1))
        source = numbered.get(n)
        href = link(n, source) if source else None
        label = escape(match.group(0))
        if href:
            title = escape(str(source.get("title") or source.get("url") or "")) if source else ""
            out.append(f'<a class="cite" href="{escape(href)}" title="{title}">{label}</a>')
        else:
            out.append(f'<span class="cite missing" title="no source has this number">{label}</span>')
        last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def _with(request: Request, **changes: Any) -> str:
    """The current page's URL with some query parameters changed (None removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    params.pop("token", None)
    return request.url.path + ("?" + urlencode(params) if params else "")


# autoescape on for every template: page text, persona text and model output are data, never markup
templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True))
templates.env.globals["with_params"] = _with
templates.env.filters["cited"] = cited
templates.env.filters["json"] = lambda value: dumps(plain(value))


def when(value: Any) -> str:
    """A time as people read it, in UTC to the second."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")
    return "" if value is None else str(value)


templates.env.filters["when"] = when


class Security:
    """Headers on every answer, and the token when one is set (a header, a cookie, or ?token= once)."""

    def __init__(self, app: ASGIApp, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.token is not None:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
                # the token leaves the address bar (and the history) for an HttpOnly cookie
                response: Response = RedirectResponse(_with(request), status_code=303)
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
                await self._secured(response)(scope, receive, send)
                return
            header = request.headers.get("authorization", "")
            offered = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
            offered = offered or request.cookies.get(TOKEN_COOKIE)
            if not offered or not hmac.compare_digest(offered.encode(), self.token.encode()):
                await self._secured(
                    PlainTextResponse("a token is needed: open the address swarm serve printed, or send "
                                      "Authorization: Bearer <token>", status_code=401)
                )(scope, receive, send)  # fmt: skip
                return

        async def secured_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured_send)

    @staticmethod
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


def create_app(db: Database, *, token: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The app over `db`. `allowed_hosts` are the Host headers answered (loopback names by default: a web
    page that rebinds its own name to 127.0.0.1 is refused)."""

    @contextmanager
    def reading() -> Iterator[duckdb.DuckDBPyConnection]:
        with db.read(sealed=True) as con:
            yield con

    def page(name: str, request: Request, status_code: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, {"request": request, **context}, status_code=status_code)

    def problem(request: Request, message: str, status_code: int) -> Response:
        return page("problem.html", request, status_code=status_code, message=message)

    def guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            try:
                return handler(request)
            except DatabaseMissing as exc:
                return problem(request, f"{exc} — import personas or run swarm demo first.", 404)
            except DatabaseBusy as exc:
                response = problem(request, str(exc), 503)
                response.headers["retry-after"] = "2"
                return response
            except SwarmError as exc:
                return problem(request, str(exc), 400)

        return run

    def persona_facets(con: duckdb.DuckDBPyConnection) -> tuple[data.Facet, ...]:
        return data.persona_facets(con)

    def number(request: Request, name: str, default: int = 1) -> int:
        try:
            return max(1, int(request.query_params.get(name, default)))
        except ValueError:
            return default

    # -- pages ------------------------------------------------------------------------------------------
    def home(request: Request) -> Response:
        with reading() as con:
            return page("runs.html", request, runs=data.runs(con))

    def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        with reading() as con:
            record = data.run(con, run_id)
            if record is None:
                return problem(request, f"no run {run_id}", 404)
            version = _version(con, run_id)
        return page("run.html", request, run=record, charts=charts.CHARTS, version=version)

    def run_api(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        with reading() as con:
            record = data.run(con, run_id)
            if record is None:
                return JSONResponse({"error": f"no run {run_id}"}, status_code=404)
            version = _version(con, run_id)
        fields = ("run_id", "status", "shown_status", "started_at", "finished_at", "updated_at", "counts",
                  "latency_ms", "checks")  # fmt: skip
        return JSONResponse(plain({**{k: record.get(k) for k in fields}, "version": version}))

    def chart(request: Request) -> Response:
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        if name not in charts.CHARTS:
            return PlainTextResponse(f"no chart {name}", status_code=404)
        with reading() as con:
            if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
                return PlainTextResponse(f"no run {run_id}", status_code=404)
            version = _version(con, run_id)
            drawn = charts.run_chart(con, run_id, name, version)
        return Response(drawn, media_type="image/svg+xml")

    def conversations(request: Request) -> Response:
        with reading() as con:
            listing = data.conversation_listing(persona_facets(con))
            found = data.browse(con, listing, dict(request.query_params), request.query_params.get("q", ""),
                                number(request, "page"), state=_file_state(db.path))  # fmt: skip
        return page("conversations.html", request, page=found)

    def conversation(request: Request) -> Response:
        conversation_id = request.path_params["conversation_id"]
        with reading() as con:
            record = data.conversation(con, conversation_id)
        if record is None:
            return problem(request, f"no conversation {conversation_id}", 404)
        return page("conversation.html", request, c=record)

    def personas(request: Request) -> Response:
        with reading() as con:
            listing = data.persona_listing(persona_facets(con))
            found = data.browse(con, listing, dict(request.query_params), request.query_params.get("q", ""),
                                number(request, "page"))  # fmt: skip
        return page("personas.html", request, page=found)

    def persona(request: Request) -> Response:
        persona_id = request.path_params["persona_id"]
        with reading() as con:
            record = data.persona(con, persona_id)
        if record is None:
            return problem(request, f"no persona {persona_id}", 404)
        return page("persona.html", request, p=record)

    def pages(request: Request) -> Response:
        with reading() as con:
            found = data.browse(con, data.PAGE_LISTING, dict(request.query_params),
                                request.query_params.get("q", ""), number(request, "page"))  # fmt: skip
        return page("pages.html", request, page=found)

    def web_page(request: Request) -> Response:
        page_id = request.path_params["page_id"]
        with reading() as con:
            record = data.page(con, page_id)
        if record is None:
            return problem(request, f"no page {page_id}", 404)
        return page("page.html", request, g=record)

    # -- SQL --------------------------------------------------------------------------------------------
    def _query(sql: str, limit: int | None) -> tuple[list[str], list[str], list[tuple[Any, ...]], bool]:
        rows: list[tuple[Any, ...]] = []
        more = False
        with run_query(db, sql, timeout=SQL_TIMEOUT_S, sealed=True) as result:
            for batch in result.batches():
                rows.extend(batch)
                if limit is not None and len(rows) > limit:
                    rows, more = rows[:limit], True
                    break
            return result.columns, result.types, rows, more

    def sql_page(request: Request) -> Response:
        sql = request.query_params.get("q", "").strip()
        if not sql:
            return page("sql.html", request, sql="", result=None, error=None)
        try:
            columns, types, rows, more = _query(sql, SQL_ROWS_SHOWN)
        except QueryTimeout:
            return page("sql.html", request, status_code=400, sql=sql, result=None,
                        error=f"stopped after {SQL_TIMEOUT_S:g} s")  # fmt: skip
        except SwarmError as exc:
            return page("sql.html", request, status_code=400, sql=sql, result=None, error=str(exc))
        shown = [[plain(v, t) for v, t in zip(row, types, strict=True)] for row in rows]
        return page("sql.html", request, sql=sql, result={"columns": columns, "rows": shown, "more": more}, error=None)

    def sql_api(request: Request) -> Response:
        sql = request.query_params.get("q", "").strip()
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            return JSONResponse({"error": f"format must be json or csv, not {fmt!r}"}, status_code=400)
        if not sql:
            return JSONResponse({"error": "give a query: /api/sql?q=SELECT …"}, status_code=400)
        try:
            columns, types, rows, more = _query(sql, SQL_ROWS_SENT)
        except QueryTimeout:
            return JSONResponse({"error": f"stopped after {SQL_TIMEOUT_S:g} s"}, status_code=400)
        except SwarmError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        cut = {"x-swarm-truncated": f"the first {SQL_ROWS_SENT} rows"} if more else {}
        if fmt == "csv":
            out = io.StringIO()
            write_rows("csv", columns, [rows], types, out=out)
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                            headers={"content-disposition": 'attachment; filename="query.csv"', **cut})  # fmt: skip
        shown = [[plain(v, t) for v, t in zip(row, types, strict=True)] for row in rows]
        answer = {"columns": columns, "rows": shown, **({"truncated": True} if more else {})}
        return Response(dumps(answer), media_type="application/json", headers=cut)

    routes = [
        Route("/", guarded(home)),
        Route("/runs/{run_id}", guarded(run_page)),
        Route("/runs/{run_id}/charts/{name}.svg", guarded(chart)),
        Route("/api/runs/{run_id}", guarded(run_api)),
        Route("/conversations", guarded(conversations)),
        Route("/conversations/{conversation_id}", guarded(conversation)),
        Route("/personas", guarded(personas)),
        Route("/personas/{persona_id:path}", guarded(persona)),
        Route("/pages", guarded(pages)),
        Route("/pages/{page_id}", guarded(web_page)),
        Route("/sql", guarded(sql_page)),
        Route("/api/sql", guarded(sql_api)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    hosts = allowed_hosts or list(LOOPBACK_NAMES)
    middleware = [Middleware(Security, token=token), Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    return Starlette(routes=routes, middleware=middleware)


def _file_state(path: Path) -> str | None:
    """What changes whenever the database does: the file's and its write-ahead log's size and time (a
    commit grows the log; a checkpoint rewrites the file). Read while a read connection holds the file,
    when no other process can write it."""
    parts = []
    for each in (path, path.with_name(path.name + ".wal")):
        try:
            found = each.stat()
        except FileNotFoundError:
            parts.append("-")
            continue
        parts.append(f"{found.st_size}:{found.st_mtime_ns}")
    return "/".join(parts)


def _version(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """What changes when a run's data does: its record's last update and how many rows it has made."""
    row = con.execute(
        "SELECT (SELECT CAST(updated_at AS VARCHAR) || coalesce(status, '') FROM runs WHERE run_id = $1), "
        "(SELECT count(*) FROM conversations WHERE run_id = $1), (SELECT count(*) FROM llm_calls WHERE run_id = $1), "
        "(SELECT count(*) FROM pages WHERE run_id = $1), (SELECT count(*) FROM quality WHERE run_id = $1)",
        [run_id],
    ).fetchone()
    return hashlib.sha256(repr(row).encode()).hexdigest()[:16]
