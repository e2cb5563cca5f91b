"""`swarm report`: one run as one self-contained HTML file — the run page's figures and charts, the best
and the worst conversations by quality, and the run's configuration and recipe. No script, no link out
for anything it shows: the stylesheet is inline and the charts are SVG data URIs, so the file opens
offline, attached to a dataset card or sent to a colleague.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
from markupsafe import Markup

from agents.web import charts, data
from agents.web.pages import HERE, cited, templates

SHOWN = 3  # conversations at each end


def _ranked(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The best and the worst of the run's checked conversations: blocking checks passed first, then the
    mean score of every check and judge."""
    order = con.execute(
        "SELECT conversation_id, bool_and(passed OR NOT blocking) AS kept, avg(score) AS mean FROM quality "
        "WHERE run_id = ? GROUP BY 1 ORDER BY kept DESC, mean DESC, conversation_id",
        [run_id],
    ).fetchall()
    ids = [str(row[0]) for row in order]
    best = ids[:SHOWN]
    worst = [i for i in reversed(ids[-SHOWN:]) if i not in best]

    def load(picked: list[str]) -> list[dict[str, Any]]:
        return [c for c in (data.conversation(con, i) for i in picked) if c is not None]

    return load(best), load(worst)


def _anchored(text: str, numbered: dict[int, dict[str, Any]], prefix: str) -> Markup:
    """Citations that point at the conversation's source list in this file, not at the server."""
    return cited(text, numbered, link=lambda n, _: f"#{prefix}-s{n}")


def render(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    record = data.run(con, run_id)
    if record is None:
        raise LookupError(f"no run {run_id}")
    pictures = {}
    for name, title in charts.CHARTS.items():
        svg = charts.svg(charts.spec(con, run_id, name))
        pictures[name] = (title, "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii"))
    best, worst = _ranked(con, run_id)
    template = templates.env.get_template("report.html")
    return template.render(
        run=record,
        pictures=pictures,
        best=best,
        worst=worst,
        style=Markup((HERE / "static" / "style.css").read_text(encoding="utf-8")),
        anchored=_anchored,
        made_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> int:
    """Write the report of `run_id` to `path`; returns its size in bytes."""
    text = render(con, run_id)
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
