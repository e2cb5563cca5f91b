"""`swarm serve`: the read-only web view; `swarm report`: one run as a self-contained HTML file."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer

from agents.cli.common import cli_errors, console, database, fail

TOKEN_ENV = "SWARM_TOKEN"


@cli_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one, printed).")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(help=f"Every request must carry it (also from {TOKEN_ENV}).", show_default=False),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Print a line for every request.")] = False,
) -> None:
    """Serve a read-only web view of the database: runs (live while they run), conversations as chats,
    personas, pages and a SQL box.

    It reads through the same guards as swarm query, with files and the network shut off, and works
    while a run writes the same database. It listens on 127.0.0.1 unless --host says otherwise; any other
    address needs --token (or SWARM_TOKEN), and then every request needs it: open the address printed
    once (it sets a cookie), or send `Authorization: Bearer <token>`.

    Examples:

      swarm serve

      swarm serve --port 8080

      SWARM_TOKEN=$(openssl rand -hex 16) swarm serve --host 0.0.0.0
    """
    import uvicorn

    from agents.web.app import create_app
    from agents.web.security import LOOPBACK_NAMES, is_loopback

    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and not token:
        raise fail(f"--host {host} lets other machines in: give --token (or set {TOKEN_ENV}) so that only people "
                   "with it can read the database", 2)  # fmt: skip
    if token is not None and len(token) < 16:
        raise fail("--token must be 16 characters or more (openssl rand -hex 16 makes one)", 2)
    if not 0 <= port <= 65535:
        raise fail(f"--port must be between 0 and 65535, not {port}", 2)
    db = database()
    with db.read(sealed=True):
        pass  # a missing or unreadable database is said now, not on the first page
    wildcard = host in ("0.0.0.0", "::", "")
    hosts = ["*"] if wildcard else [*LOOPBACK_NAMES, host.strip("[]"), f"[{host.strip('[]')}]"]
    app = create_app(db, token=token, allowed_hosts=hosts)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family, reuse_port=False)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from exc
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    url = f"http://{'127.0.0.1' if wildcard else shown}:{bound}/"
    console.print(f"serving {db.path} read-only at {url} (Ctrl-C stops)", soft_wrap=True, markup=False)
    if token:
        console.print(f"open {url}?token=… with the token once; it is kept as a cookie", markup=False)
    threading.Thread(target=_warm_charts, daemon=True).start()
    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log, lifespan="off")
    logging.getLogger("uvicorn.access").addFilter(_NoToken())  # after Config, which sets up uvicorn's logging
    uvicorn.Server(config).run(sockets=[sock])


class _NoToken(logging.Filter):
    """The access log's request lines without the value of a `?token=`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                re.sub(r"token=[^&\s]*", "token=…", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _warm_charts() -> None:
    """Start the chart renderer (about a second) before the first run page asks for a chart."""
    try:
        from agents.web.charts import svg

        svg({"mark": "point", "data": {"values": []}})
    except Exception:  # a chart that cannot be drawn says so when it is asked for
        pass


@cli_errors
def report(
    run_id: Annotated[
        str | None, typer.Option("--run", help="The run (default: the latest).", show_default=False)
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The file (default: <run>.html).", show_default=False)
    ] = None,
) -> None:
    """Write one run as a self-contained HTML file: its figures and charts, its best and worst
    conversations by quality, its configuration and recipe. It opens with no network (no script, the
    charts inline): attach it to a dataset card or send it to a colleague.

    Examples:

      swarm report

      swarm report --run run_20261207T051840_0faaab -o report.html
    """
    from agents.evaluate import EvalError, latest_run
    from agents.web import report as writer

    db = database()
    try:
        run_id = run_id or latest_run(db)
    except EvalError as exc:
        raise fail("no run yet: swarm run (or swarm demo) makes one", 1) from exc
    path = output or Path(f"{run_id}.html")
    if path.is_dir():
        raise fail(f"{path} is a folder: give a file name with -o", 2)
    with db.read(sealed=True) as con:
        if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
            raise fail(f"no run {run_id} (swarm runs lists them)", 1)
        try:
            size = writer.write(con, run_id, path)
        except OSError as exc:
            raise fail(f"cannot write {path}: {exc.strerror or exc}", 1) from exc
    console.print(f"wrote {path} ({size / 1024:,.0f} KB): run {run_id}", markup=False, soft_wrap=True)
