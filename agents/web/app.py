"""`swarm serve`: a read-only web app over the database (Starlette, Jinja2, uvicorn).

Every request opens its own sealed read-only connection (no file but the database, no network, the
configuration locked, bounded memory; see storage.Database.read) and closes it before answering, one
request at a time, so that a run writing the same file gets its turn between them. Text from the web
or a model reaches the page only through Jinja2's autoescaping, the Content-Security-Policy runs no
script but the app's own file, and requests another site's page makes are refused.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agents.cli.output import dumps, plain, write_rows
from agents.web import charts, data
from agents.web.pages import HERE, templates
from agents.web.security import LOOPBACK_NAMES, Security
from storage import Database, QueryTimeout, run_query
from storage.errors import DatabaseBusy, DatabaseMissing, SwarmError

SQL_ROWS_SHOWN = 1000  # rows the SQL page shows
SQL_ROWS_SENT = 100_000  # rows /api/sql answers at most (held in memory to answer): swarm query has no bound
SQL_TIMEOUT_S = 10.0  # a run that writes the same file waits meanwhile (its writes wait 30 s before failing)
SQL_CHARACTERS = 50_000_000  # text an answer holds at most (it is made in memory), whatever its rows
CELL_SHOWN = 2000  # characters of a value the SQL page shows
GAP_S = 0.03  # the database left free between two requests' reads, for a run waiting to write


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

    def listed(request: Request, template: str, listing: Callable[[duckdb.DuckDBPyConnection], data.Listing],
               state: str | None = None) -> Response:  # fmt: skip
        with reading() as con:
            found = data.browse(con, listing(con), dict(request.query_params), request.query_params.get("q", ""),
                                number(request, "page"), state=state)  # fmt: skip
        return page(template, request, page=found)

    def one(request: Request, template: str, what: str, key: str,
            reader: Callable[[duckdb.DuckDBPyConnection, str], dict[str, Any] | None]) -> Response:  # fmt: skip
        with reading() as con:
            record = reader(con, key)
        if record is None:
            return problem(request, f"no {what} {key}", 404)
        return page(template, request, record=record)

    def conversations(request: Request) -> Response:
        # the list's rows are kept while the database file is unchanged (data.browse)
        return listed(request, "conversations.html", lambda con: data.conversation_listing(data.persona_facets(con)),
                      state=_file_state(db.path))  # fmt: skip

    def personas(request: Request) -> Response:
        return listed(request, "personas.html", lambda con: data.persona_listing(data.persona_facets(con)))

    def pages(request: Request) -> Response:
        return listed(request, "pages.html", lambda _: data.PAGE_LISTING)

    def conversation(request: Request) -> Response:
        return one(request, "conversation.html", "conversation", request.path_params["conversation_id"],
                   data.conversation)  # fmt: skip

    def persona(request: Request) -> Response:
        # /persona?id=… is how the pages link (a source's id may be "..", or hold "/"); /personas/ID for typing
        key = request.path_params.get("persona_id") or request.query_params.get("id", "")
        return one(request, "persona.html", "persona", key, data.persona)

    def web_page(request: Request) -> Response:
        return one(request, "page.html", "page", request.path_params["page_id"], data.page)

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
        except SwarmError as exc:
            status, message = _refusal(exc)
            return page("sql.html", request, status_code=status, sql=sql, result=None, error=message)
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
        except SwarmError as exc:
            status, message = _refusal(exc)
            return JSONResponse(
                {"error": message}, status_code=status, headers={"retry-after": "5"} if status == 503 else None
            )
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


def _refusal(exc: SwarmError) -> tuple[int, str]:
    """A SQL query's failure as the page and the endpoint answer it: its status and its message."""
    if isinstance(exc, QueryTimeout):
        return 400, f"stopped after {SQL_TIMEOUT_S:g} s"
    return (503 if isinstance(exc, SqlBusy) else 400), str(exc)


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
