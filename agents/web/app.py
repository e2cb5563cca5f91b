"""`swarm serve`: a read-only web app over the database (Starlette, Jinja2, uvicorn).

Every request opens its own sealed read-only connection (no file but the database, no network, the
configuration locked, bounded memory; see storage.Database.read) and closes it before answering, one
request at a time, so that a run writing the same file gets its turn between them. Text from the web
or a model reaches the page only through Jinja2's autoescaping, the Content-Security-Policy runs no
script but the app's own file, and requests another site's page makes are refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import ipaddress
import math
import threading
import time
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
from agents.quality.checks import CITATION
from agents.web import charts, data
from storage import Database, QueryTimeout, run_query
from storage.errors import DatabaseBusy, DatabaseMissing, SwarmError

HERE = Path(__file__).resolve().parent
SQL_ROWS_SHOWN = 1000  # rows the SQL page shows
SQL_ROWS_SENT = 100_000  # rows /api/sql answers at most (held in memory to answer): swarm query has no bound
SQL_TIMEOUT_S = 10.0  # a run that writes the same file waits meanwhile (its writes wait 30 s before failing)
SQL_CHARACTERS = 50_000_000  # text an answer holds at most (it is made in memory), whatever its rows
CELL_SHOWN = 2000  # characters of a value the SQL page shows
GAP_S = 0.03  # the database left free between two requests' reads, for a run waiting to write
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


def page_link(n: int, source: dict[str, Any]) -> str | None:
    """Where the view's [n] leads: the stored page source n was."""
    return f"/pages/{source['page_id']}" if source.get("page_id") else None


def cited(
    text: str, numbered: dict[int, dict[str, Any]], link: Callable[[int, dict[str, Any]], str | None] = page_link
) -> Markup:
    """A message's text, escaped, with each [n] a link (`link`) to what source n was."""
    out, last = [], 0
    for match in CITATION.finditer(text):
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
            response = RedirectResponse("/" + _with(request).lstrip("/"), status_code=303)
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


def create_app(db: Database, *, token: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The app over `db`. `allowed_hosts` are the Host headers answered (loopback names by default: a web
    page that rebinds its own name to 127.0.0.1 is refused)."""

    sql_slot = threading.Semaphore(1)
    turn, turn_lock = threading.Lock(), threading.Lock()  # the database's turn; the count of those waiting
    free = {"since": 0.0, "waiting": 0}

    @contextmanager
    def gap() -> Iterator[None]:
        """The requests' reads take turns (one connection at a time, as the file allows one a process),
        with a pause between them when they queue: a run in another process waiting to write polls for
        the file, and a queue would otherwise hand it on without a break. One person's requests, one
        after another, do not queue and wait for nothing."""
        with turn_lock:
            free["waiting"] += 1
        with turn:
            with turn_lock:
                free["waiting"] -= 1
            wait = free["since"] + GAP_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                yield
            finally:
                with turn_lock:
                    free["since"] = time.monotonic() if free["waiting"] else 0.0

    @contextmanager
    def reading() -> Iterator[duckdb.DuckDBPyConnection]:
        with gap(), db.read(sealed=True) as con:
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

    def number(request: Request, name: str, default: int = 1) -> int:
        try:
            return max(1, int(request.query_params.get(name, default)))
        except ValueError:
            return default

    # -- pages ------------------------------------------------------------------------------------------
    def home(request: Request) -> Response:
        with reading() as con:
            runs = data.runs(con)
        return page("runs.html", request, runs=runs)  # pages are made with the database free again

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
        return JSONResponse(finite(plain({**{k: record.get(k) for k in fields}, "version": version})))

    def chart(request: Request) -> Response:
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        if name not in charts.CHARTS:
            return PlainTextResponse(f"no chart {name}", status_code=404)
        with reading() as con:
            if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
                return PlainTextResponse(f"no run {run_id}", status_code=404)
            key = (run_id, name, _version(con, run_id))
            drawn = charts.drawn.get(key)
            specification = charts.spec(con, run_id, name) if drawn is None else None
        if drawn is None:  # drawn with the database free again
            drawn = charts.svg(specification or {})
            charts.drawn.put(key, drawn)
        return Response(drawn, media_type="image/svg+xml")

    def conversations(request: Request) -> Response:
        with reading() as con:
            listing = data.conversation_listing(data.persona_facets(con))
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
            listing = data.persona_listing(data.persona_facets(con))
            found = data.browse(con, listing, dict(request.query_params), request.query_params.get("q", ""),
                                number(request, "page"))  # fmt: skip
        return page("personas.html", request, page=found)

    def persona(request: Request) -> Response:
        # /persona?id=… is how the pages link (a source's id may be "..", or hold "/"); /personas/ID for typing
        persona_id = request.path_params.get("persona_id") or request.query_params.get("id", "")
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
    def _query(sql: str, limit: int) -> tuple[list[str], list[str], list[tuple[Any, ...]], bool]:
        """At most `limit` rows and SQL_CHARACTERS of text (then `more` is true); one query at a time."""
        if not sql_slot.acquire(blocking=False):
            raise SqlBusy("another SQL query is running here; run this one when it has ended")
        try:
            rows: list[tuple[Any, ...]] = []
            more, held = False, 0
            with gap(), run_query(db, sql, timeout=SQL_TIMEOUT_S, sealed=True) as result:
                for batch in result.batches(256):
                    for row in batch:
                        held += sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)
                        if len(rows) == limit or held > SQL_CHARACTERS:
                            more = True
                            break
                        rows.append(row)
                    if more:
                        break
                return result.columns, result.types, rows, more
        finally:
            sql_slot.release()

    def sql_page(request: Request) -> Response:
        sql = request.query_params.get("q", "").strip()
        if not sql:
            return page("sql.html", request, sql="", result=None, error=None)
        try:
            columns, types, rows, more = _query(sql, SQL_ROWS_SHOWN)
        except QueryTimeout:
            return page("sql.html", request, status_code=400, sql=sql, result=None,
                        error=f"stopped after {SQL_TIMEOUT_S:g} s")  # fmt: skip
        except SqlBusy as exc:
            return page("sql.html", request, status_code=503, sql=sql, result=None, error=str(exc))
        except SwarmError as exc:
            return page("sql.html", request, status_code=400, sql=sql, result=None, error=str(exc))
        shown = [[_cut(finite(plain(v, t))) for v, t in zip(row, types, strict=True)] for row in rows]
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
        except SqlBusy as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"retry-after": "5"})
        except SwarmError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        cut = {"x-swarm-truncated": f"the first {len(rows)} rows"} if more else {}
        if fmt == "csv":
            out = io.StringIO()
            write_rows("csv", columns, [rows], types, out=out)
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                            headers={"content-disposition": 'attachment; filename="query.csv"', **cut})  # fmt: skip
        shown = [[finite(plain(v, t)) for v, t in zip(row, types, strict=True)] for row in rows]
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
        Route("/persona", guarded(persona)),
        Route("/personas/{persona_id:path}", guarded(persona)),
        Route("/pages", guarded(pages)),
        Route("/pages/{page_id}", guarded(web_page)),
        Route("/sql", guarded(sql_page)),
        Route("/api/sql", guarded(sql_api)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    hosts = allowed_hosts or list(LOOPBACK_NAMES)
    # the Host check first: a request for another name gets nothing, not even the token's redirect
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(Security, token=token)]
    return Starlette(routes=routes, middleware=middleware)


class SqlBusy(SwarmError):
    """Another SQL query of the view is running."""


def finite(value: Any) -> Any:
    """`value` with NaN and infinities as null: JSON has neither (DuckDB's DOUBLE has both)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def _cut(value: Any) -> Any:
    """A value as the SQL page shows it: text past CELL_SHOWN characters cut, with a mark."""
    text = value if isinstance(value, str) else None
    if text is not None and len(text) > CELL_SHOWN:
        return text[:CELL_SHOWN] + f" … ({len(text):,} characters; the download has them all)"
    return value


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
