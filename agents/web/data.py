"""What the web view and the report read: runs, conversations, personas and pages, as lists with facets
and as single records. Every function takes an open read-only connection (one a request, see app.py):
a run that writes the same file gets it back between requests.

A facet is a SQL expression over a list's rows; the page's query string picks values of facets, and
each facet's counts are those of the rows the other choices leave.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import duckdb

from agents.quality import CHECKS
from agents.runs import count_tables, status_of
from storage.sql import fetch_dicts, ident

PAGE_SIZE = 50
FACET_VALUES = 12  # the most frequent values a facet shows


@dataclass(frozen=True)
class Facet:
    name: str  # its query-string parameter
    label: str
    sql: str  # the value of a row (VARCHAR), or a list of them when `many`
    many: bool = False


@dataclass(frozen=True)
class Listing:
    """One kind of list: its rows' SQL (with the aliases its facets and columns use) and its facets."""

    source: str  # FROM … (joins included)
    columns: str  # SELECT …
    order: str
    facets: tuple[Facet, ...]
    search: str  # the text a search looks in


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    facets: list[tuple[Facet, list[tuple[str, int]]]]
    chosen: dict[str, str]
    query: str


def _choice_sql(facet: Facet) -> str:
    return f"list_contains({facet.sql}, ?)" if facet.many else f"({facet.sql}) = ?"


def _where(listing: Listing, chosen: dict[str, str], query: str, leave_out: str | None = None) -> tuple[str, list[Any]]:
    parts, params = [], []
    for facet in listing.facets:
        if facet.name in chosen and facet.name != leave_out:
            parts.append(_choice_sql(facet))
            params.append(chosen[facet.name])
    if query:
        parts.append(f"contains(lower({listing.search}), lower(?))")
        params.append(query)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def browse(
    con: duckdb.DuckDBPyConnection, listing: Listing, chosen: dict[str, str], query: str = "", page: int = 1
) -> Page:
    """One page of `listing`'s rows that match the facet values `chosen` and the search `query`, with
    every facet's counts."""
    chosen = {k: v for k, v in chosen.items() if any(f.name == k for f in listing.facets)}
    where, params = _where(listing, chosen, query)
    total = int(con.execute(f"SELECT count(*) {listing.source}{where}", params).fetchone()[0])  # type: ignore[index]
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = fetch_dicts(
        con.execute(
            f"SELECT {listing.columns} {listing.source}{where} ORDER BY {listing.order} LIMIT {PAGE_SIZE} "
            f"OFFSET {(page - 1) * PAGE_SIZE}",
            params,
        )
    )
    facets = []
    for facet in listing.facets:
        # a facet's counts leave out its own choice, so that its other values stay in sight
        own_where, own_params = _where(listing, chosen, query, leave_out=facet.name)
        value = f"unnest({facet.sql})" if facet.many else facet.sql
        counted = con.execute(
            f"SELECT v, count(*) AS n FROM (SELECT CAST({value} AS VARCHAR) AS v {listing.source}{own_where}) "
            f"WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY n DESC, v LIMIT {FACET_VALUES}",
            own_params,
        ).fetchall()
        facets.append((facet, [(str(v), int(n)) for v, n in counted]))
    return Page(rows, total, page, pages, facets, chosen, query)


# -- persona attributes as facets -----------------------------------------------------------------------

_NUMERIC = {"BIGINT", "INTEGER", "DOUBLE", "FLOAT", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "DECIMAL"}


def persona_facets(con: duckdb.DuckDBPyConnection, alias: str = "p", most: int = 5) -> tuple[Facet, ...]:
    """Persona attributes worth a facet: short text (labels such as an occupation or a country, not a
    description: 40 characters on average at most, in a sample of 10,000 personas), lists of such
    labels, fewest values first, then numbers in decades (an age of 43 shows as 40–49)."""
    fields = con.execute(
        "SELECT field, sql_type, column_name FROM persona_fields ORDER BY first_import_id, field"
    ).fetchall()
    labels = [(f, t, c) for f, t, c in fields if t in ("VARCHAR", "VARCHAR[]")]
    found: list[tuple[int, Facet]] = []
    if labels:
        values = [f"unnest({ident(c)})" if t == "VARCHAR[]" else ident(c) for _, t, c in labels]
        measured = con.execute(
            "SELECT " + ", ".join(f"approx_count_distinct(v{i}), avg(length(v{i}))" for i in range(len(labels)))
            + " FROM (SELECT " + ", ".join(f"{v} AS v{i}" for i, v in enumerate(values))
            + " FROM (SELECT * FROM personas LIMIT 10000))"
        ).fetchone() or ()  # fmt: skip
        for i, (field, sql_type, column) in enumerate(labels):
            distinct, length = measured[2 * i], measured[2 * i + 1]
            if distinct and int(distinct) > 1 and length is not None and float(length) <= 40:
                many = sql_type == "VARCHAR[]"
                found.append((int(distinct), Facet(f"persona.{field}", field, f"{alias}.{ident(column)}", many)))
    found.sort(key=lambda pair: pair[0])
    numbers = []
    for field, sql_type, column in fields:
        if sql_type in _NUMERIC:
            col = f"{alias}.{ident(column)}"
            decade = f"CAST(floor({col} / 10) * 10 AS BIGINT)"
            value = f"CASE WHEN {col} IS NOT NULL THEN {decade} || '–' || ({decade} + 9) END"
            numbers.append(Facet(f"persona.{field}", f"{field} (range)", value))
    return tuple([facet for _, facet in found][: most - min(len(numbers), 1)] + numbers)[:most]


def conversation_listing(persona: tuple[Facet, ...]) -> Listing:
    failed = (
        "(SELECT list(q.check_name ORDER BY q.check_name) FROM quality q WHERE q.conversation_id = c.conversation_id "
        "AND NOT q.passed)"
    )
    checked = (
        "(CASE WHEN NOT EXISTS (SELECT 1 FROM quality q WHERE q.conversation_id = c.conversation_id) "
        "THEN 'not checked' WHEN EXISTS (SELECT 1 FROM quality q WHERE q.conversation_id = c.conversation_id "
        "AND q.blocking AND NOT q.passed) THEN 'failed' ELSE 'passed' END)"
    )
    return Listing(
        source="FROM conversations c LEFT JOIN personas p ON p.persona_id = c.persona_id",
        columns=(
            "c.conversation_id, c.run_id, c.created_at, c.status, c.persona_id, left(p.text, 140) AS persona, "
            "c.metadata->>'$.theme' AS theme, c.metadata->>'$.sentiment' AS sentiment, "
            "left(c.messages->>'$[0].content', 200) AS opening, json_array_length(c.messages) AS turns"
        ),
        order="c.created_at DESC, c.conversation_id",
        facets=(
            Facet("run", "run", "c.run_id"),
            Facet("quality", "quality", checked),
            Facet("failed", "failed check", failed, many=True),
            Facet("theme", "theme", "c.metadata->>'$.theme'"),
            Facet("sentiment", "sentiment", "c.metadata->>'$.sentiment'"),
            Facet("tag", "tag", "TRY_CAST(c.metadata->'$.tags' AS VARCHAR[])", many=True),
            *persona,
        ),
        search="CAST(c.messages AS VARCHAR)",
    )


def persona_listing(persona: tuple[Facet, ...]) -> Listing:
    return Listing(
        source="FROM personas p",
        columns="p.persona_id, left(p.text, 240) AS text, p.layout, p.source, p.imported_at",
        order="p.persona_id",
        facets=(Facet("layout", "layout", "p.layout"), Facet("import", "import", "p.import_id"), *persona),
        search="p.text",
    )


PAGE_LISTING = Listing(
    source="FROM pages g",
    columns=(
        "g.page_id, g.run_id, g.url, g.host, g.status, coalesce(g.error, 'ok') AS outcome, g.error_detail, "
        "g.title, g.fetched_at, g.bytes, g.rendered"
    ),
    order="g.fetched_at DESC NULLS LAST, g.page_id",
    facets=(
        Facet("run", "run", "g.run_id"),
        Facet("host", "host", "g.host"),
        Facet("outcome", "outcome", "coalesce(g.error, 'ok')"),
        Facet("rendered", "rendered", "CASE WHEN g.rendered THEN 'browser' ELSE 'http' END"),
    ),
    search="coalesce(g.url, '') || ' ' || coalesce(g.title, '')",
)


# -- records --------------------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def runs(con: duckdb.DuckDBPyConnection, limit: int = 200) -> list[dict[str, Any]]:
    rows = fetch_dicts(con.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", [limit]))
    for row in rows:
        row["counts"] = _json(row["counts"]) or {}
        row["shown_status"] = status_of(row)
    return rows


def run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """A run's record with its counts worked out now from the tables (a running run's stored counts lag)."""
    found = fetch_dicts(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
    if not found:
        return None
    record = found[0]
    record["config"] = _json(record["config"]) or {}
    record["shown_status"] = status_of(record)
    record["counts"] = count_tables(con, run_id)
    latency = con.execute(
        "SELECT quantile_cont(latency_ms, [0.5, 0.9, 0.99]), avg(latency_ms) FROM llm_calls "
        "WHERE run_id = ? AND NOT cached AND latency_ms IS NOT NULL",
        [run_id],
    ).fetchone()
    record["latency_ms"] = (
        {"p50": latency[0][0], "p90": latency[0][1], "p99": latency[0][2], "mean": latency[1]}
        if latency and latency[0]
        else None
    )
    record["checks"] = con.execute(
        "SELECT check_name, count(*) FILTER (WHERE passed), count(*) FROM quality WHERE run_id = ? "
        "AND list_contains(?, check_name) GROUP BY 1 ORDER BY 1",
        [run_id, [c.name for c in CHECKS]],
    ).fetchall()
    return record


def conversation(con: duckdb.DuckDBPyConnection, conversation_id: str) -> dict[str, Any] | None:
    found = fetch_dicts(
        con.execute(
            "SELECT c.*, p.text AS persona_text FROM conversations c LEFT JOIN personas p USING (persona_id) "
            "WHERE c.conversation_id = ?",
            [conversation_id],
        )
    )
    if not found:
        return None
    record = found[0]
    for key in ("messages", "sources", "metadata", "queries", "outputs", "failed_steps", "variations"):
        record[key] = _json(record.get(key))
    record["quality"] = fetch_dicts(
        con.execute(
            "SELECT check_name, score, passed, blocking, detail FROM quality WHERE conversation_id = ? "
            "ORDER BY blocking DESC, check_name",
            [conversation_id],
        )
    )
    # every source number the assistant was given, to the page it was: the read step keeps them all,
    # `sources` only those cited
    given = ((record["outputs"] or {}).get("read") or {}).get("sources") or []
    numbered: dict[int, dict[str, Any]] = {}
    for source in [*given, *(record["sources"] or [])]:
        if isinstance(source, dict) and isinstance(source.get("n"), int) and source.get("page_id"):
            numbered.setdefault(source["n"], {"n": source["n"], "page_id": str(source["page_id"])})
    cited = {s.get("n") for s in record["sources"] or [] if isinstance(s, dict)}
    if numbered:
        stored = con.execute(
            "SELECT page_id, url, title FROM pages WHERE list_contains(?, page_id)",
            [[s["page_id"] for s in numbered.values()]],
        ).fetchall()
        pages = {page_id: (url, title) for page_id, url, title in stored}
        for n, source in numbered.items():
            url, title = pages.get(source["page_id"], (None, None))
            source.update(url=url, title=title, cited=n in cited)
    record["numbered"] = numbered
    return record


def persona(con: duckdb.DuckDBPyConnection, persona_id: str) -> dict[str, Any] | None:
    found = fetch_dicts(
        con.execute(
            "SELECT persona_id, text, CAST(attributes AS VARCHAR) AS attributes, source, source_line, source_id, "
            "layout, import_id, imported_at FROM personas WHERE persona_id = ?",
            [persona_id],
        )
    )
    if not found:
        return None
    record = found[0]
    record["attributes"] = _json(record["attributes"]) or {}
    record["conversations"] = fetch_dicts(
        con.execute(
            "SELECT conversation_id, run_id, cycle, created_at, status, metadata->>'$.theme' AS theme FROM "
            "conversations WHERE persona_id = ? ORDER BY created_at DESC LIMIT 200",
            [persona_id],
        )
    )
    record["runs"] = [
        r
        for (r,) in con.execute(
            "SELECT DISTINCT run_id FROM run_personas WHERE persona_id = ?", [persona_id]
        ).fetchall()
    ]
    return record


def page(con: duckdb.DuckDBPyConnection, page_id: str) -> dict[str, Any] | None:
    found = fetch_dicts(
        con.execute(
            "SELECT page_id, run_id, url, final_url, host, depth, status, content_type, fetched_at, elapsed_ms, "
            "attempts, bytes, charset, rendered, title, text, language, error, error_detail, duplicate_of "
            "FROM pages WHERE page_id = ?",
            [page_id],
        )
    )
    return found[0] if found else None
