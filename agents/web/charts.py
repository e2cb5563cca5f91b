"""A run's charts: Vega-Lite specifications made with altair, drawn to SVG by vl-convert in this process.

The browser gets pictures, not scripts: the view keeps a Content-Security-Policy that runs no inline
script, and the report opens with no network. vl-convert starts its renderer once (~1 s), then a chart
takes tens of milliseconds; a drawn chart is kept until its run's data changes (`drawn`, by a key with
the run's latest write in it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import altair as alt
import duckdb

from agents.web.kept import Kept

WIDTH = 420
POINTS = 300  # a line's points at most: a long run's conversations are counted in wider steps
BINS = 30

CHARTS: dict[str, str] = {
    "conversations": "conversations over time",
    "latency": "LLM latency",
    "pages": "pages by outcome",
    "judges": "judge and check scores",
}


def _empty(title: str) -> alt.Chart:
    return (
        alt.Chart(alt.Data(values=[{"text": "nothing yet"}]))
        .mark_text(size=14, color="#888")
        .encode(text="text:N")
        .properties(width=WIDTH, height=60, title=title)
    )


def _conversations(con: duckdb.DuckDBPyConnection, run_id: str) -> alt.Chart:
    # a step of whole seconds that makes POINTS points at most over the run's span
    span = con.execute(
        "SELECT epoch(max(created_at)) - epoch(min(created_at)) FROM conversations WHERE run_id = ?", [run_id]
    ).fetchone()
    step = max(1, math.ceil(float(span[0] or 0) / POINTS)) if span else 1
    rows = con.execute(
        "SELECT strftime(time_bucket(to_seconds(?), created_at), '%Y-%m-%dT%H:%M:%S') AS t, count(*) AS n "
        "FROM conversations WHERE run_id = ? GROUP BY 1 ORDER BY 1",
        [step, run_id],
    ).fetchall()
    if not rows:
        return _empty(CHARTS["conversations"])
    total, values = 0, []
    for t, n in rows:
        total += int(n)
        values.append({"time": t, "conversations": total})
    return (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=len(values) < 40, interpolate="step-after")
        .encode(x=alt.X("time:T", title=None), y=alt.Y("conversations:Q", title="conversations"))
        .properties(width=WIDTH, height=180, title=CHARTS["conversations"])
    )


def _latency(con: duckdb.DuckDBPyConnection, run_id: str) -> alt.Chart:
    # every call counted in BINS equal bins (in SQL: the picture gets the counts, not the calls)
    rows = con.execute(
        "WITH calls AS (SELECT latency_ms / 1000.0 AS s, purpose FROM llm_calls WHERE run_id = ? AND NOT cached "
        "AND latency_ms IS NOT NULL), width AS (SELECT greatest(max(s), 0.001) / ? AS w FROM calls) "
        "SELECT least(floor(s / w), ? - 1) * w AS start, w, purpose, count(*) FROM calls, width GROUP BY ALL",
        [run_id, BINS, BINS],
    ).fetchall()
    if not rows:
        return _empty(CHARTS["latency"])
    values = [
        {"start": float(a), "end": float(a) + float(w), "purpose": str(p), "calls": int(n)} for a, w, p, n in rows
    ]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X("start:Q", scale=alt.Scale(domainMin=0), title="seconds a call"),
            x2="end:Q",
            y=alt.Y("sum(calls):Q", title="calls"),
            color=alt.Color("purpose:N", title="purpose"),
        )
        .properties(width=WIDTH, height=180, title=CHARTS["latency"])
    )


def _pages(con: duckdb.DuckDBPyConnection, run_id: str) -> alt.Chart:
    rows = con.execute(
        "SELECT coalesce(error, 'ok') AS outcome, count(*) AS n FROM pages WHERE run_id = ? GROUP BY 1 "
        "ORDER BY 2 DESC LIMIT 15",
        [run_id],
    ).fetchall()
    if not rows:
        return _empty(CHARTS["pages"])
    values = [{"outcome": str(o), "pages": int(n)} for o, n in rows]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(x=alt.X("pages:Q", title="pages"), y=alt.Y("outcome:N", sort="-x", title=None))
        .properties(width=WIDTH, height=max(40, 22 * len(values)), title=CHARTS["pages"])
    )


def _judges(con: duckdb.DuckDBPyConnection, run_id: str) -> alt.Chart:
    # every score counted in tenths (1.0 with the last), in SQL
    rows = con.execute(
        "SELECT check_name, least(floor(score * 10), 9) / 10 AS start, count(*) FROM quality "
        "WHERE run_id = ? AND score IS NOT NULL GROUP BY ALL",
        [run_id],
    ).fetchall()
    if not rows:
        return _empty(CHARTS["judges"])
    values = [{"name": str(n), "start": float(a), "end": float(a) + 0.1, "conversations": int(c)} for n, a, c in rows]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X("start:Q", scale=alt.Scale(domain=[0, 1]), title="score"),
            x2="end:Q",
            y=alt.Y("sum(conversations):Q", title="conversations"),  # summed: bars that stand on zero
        )
        .properties(width=130, height=90)
        .facet(facet=alt.Facet("name:N", title=None), columns=3)
        .properties(title=CHARTS["judges"])
    )


_MAKERS: dict[str, Callable[[duckdb.DuckDBPyConnection, str], Any]] = {
    "conversations": _conversations,
    "latency": _latency,
    "pages": _pages,
    "judges": _judges,
}


def spec(con: duckdb.DuckDBPyConnection, run_id: str, name: str) -> dict[str, Any]:
    """The Vega-Lite specification of chart `name` (one of CHARTS) of a run."""
    return dict(_MAKERS[name](con, run_id).to_dict())


drawn: Kept[str] = Kept(256)  # SVGs, by (run, chart, the run's latest write)


def svg(specification: dict[str, Any]) -> str:
    import vl_convert  # ~0.5 s to import: only when a chart is drawn

    return str(vl_convert.vegalite_to_svg(specification))
