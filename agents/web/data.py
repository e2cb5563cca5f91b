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
from agents.web.kept import Kept
from storage.sql import fetch_dicts, ident, quote

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
    columns: str  # SELECT … (of a page's rows, from `page_source`, or `source` when that is empty)
    key: str  # the row's id
    sort: str  # what the rows are sorted on, then the key
    descending: bool
    facets: tuple[Facet, ...]
    search: str  # the text a search looks in
    # worked out once into a temporary table (facets that join or read JSON), or read through a view
    # (plain columns: a million personas are faster read again than copied)
    materialize: bool = False
    page_source: str = ""  # a lighter FROM for the page's rows, when `source` joins what only facets need


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    facets: list[tuple[Facet, list[tuple[str, int]]]]
    chosen: dict[str, str]
    query: str


# the lists of late requests (Arrow tables), by listing, search and the database file's state: choosing
# facets and paging read the same rows again. A few: each is the rows' keys and facet values, ~10 MB for
# 100,000 rows
kept: Kept[Any] = Kept(6)


def browse(
    con: duckdb.DuckDBPyConnection,
    listing: Listing,
    chosen: dict[str, str],
    query: str = "",
    page: int = 1,
    state: str | None = None,
) -> Page:
    """One page of `listing`'s rows that match the facet values `chosen` and the search `query`, with
    every facet's counts.

    The rows the search leaves, with every facet's value, are `browsed`: worked out once into an Arrow
    table when the listing says `materialize` (a facet that joins another table or reads JSON, worked
    out once, not once a facet; kept for the next request while `state`, the database file's, is the
    same), else a temporary view. The count, the page and each facet's counts are read from it. A
    facet's counts leave out its own choice, so that its other values stay in sight. All of it runs on
    a cursor of its own, whose registrations and view go when it closes."""
    chosen = {k: v for k, v in chosen.items() if any(f.name == k for f in listing.facets)}
    values = ", ".join(
        f"CAST({f.sql} AS VARCHAR{'[]' if f.many else ''}) AS f{i}" for i, f in enumerate(listing.facets)
    )
    # the search as a literal (quoted): a view cannot take a parameter
    search = f" WHERE contains(lower({listing.search}), lower({quote(query)}))" if query else ""
    rows_sql = f"SELECT {listing.key} AS key, {listing.sort} AS sort, {values} {listing.source}{search}"
    with con.cursor() as cur:
        if listing.materialize:
            key = (state or "", repr(listing), query)
            table = kept.get(key) if state else None
            if table is None:
                table = cur.sql(rows_sql).to_arrow_table()
                if state:
                    kept.put(key, table)
            cur.register("browsed", table)
        else:
            cur.execute(f"CREATE TEMP VIEW browsed AS {rows_sql}").fetchall()
        return _read(cur, listing, chosen, query, page)


def _read(cur: duckdb.DuckDBPyConnection, listing: Listing, chosen: dict[str, str], query: str, page: int) -> Page:
    """browse()'s count, page and facets, from `browsed`."""

    def where(leave_out: str | None = None) -> tuple[str, list[str]]:
        parts, given = [], []
        for i, facet in enumerate(listing.facets):
            if facet.name in chosen and facet.name != leave_out:
                parts.append(f"list_contains(f{i}, ?)" if facet.many else f"f{i} = ?")
                given.append(chosen[facet.name])
        return (" WHERE " + " AND ".join(parts)) if parts else "", given

    chosen_where, chosen_params = where()
    total = int(cur.execute(f"SELECT count(*) FROM browsed{chosen_where}", chosen_params).fetchall()[0][0])
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(max(1, page), pages)
    order = "DESC NULLS LAST" if listing.descending else "ASC NULLS LAST"
    keys = [
        k
        for (k,) in cur.execute(
            f"SELECT key FROM browsed{chosen_where} ORDER BY sort {order}, key LIMIT {PAGE_SIZE} "
            f"OFFSET {(page - 1) * PAGE_SIZE}",
            chosen_params,
        ).fetchall()
    ]
    found = {
        row["key"]: row
        for row in fetch_dicts(
            cur.execute(
                f"SELECT {listing.key} AS key, {listing.columns} {listing.page_source or listing.source} "
                f"WHERE list_contains(?, {listing.key})",
                [keys],
            )
        )
    }
    rows = [found[k] for k in keys if k in found]
    # every facet's most frequent values in one statement (one round of DuckDB's planning, not one a facet)
    parts, part_params = [], []
    for i, facet in enumerate(listing.facets):
        own_where, own_params = where(leave_out=facet.name)
        value = f"unnest(list_distinct(f{i}))" if facet.many else f"f{i}"  # a row counts once a value
        parts.append(
            f"(SELECT {i} AS facet, v, count(*) AS n FROM (SELECT {value} AS v FROM browsed{own_where}) "
            f"WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY n DESC, v LIMIT {FACET_VALUES})"
        )
        part_params += own_params
    counted: dict[int, list[tuple[str, int]]] = {i: [] for i in range(len(listing.facets))}
    if parts:
        for i, v, n in cur.execute(" UNION ALL ".join(parts) + " ORDER BY facet, n DESC, v", part_params).fetchall():
            counted[int(i)].append((str(v), int(n)))
    for i, facet in enumerate(listing.facets):
        choice = chosen.get(facet.name)
        if choice is not None and all(v != choice for v, _ in counted[i]):
            counted[i].append((choice, total))  # a choice past the most frequent: still shown, to undo
    facets = [(facet, counted[i]) for i, facet in enumerate(listing.facets)]
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
            decade = f"TRY_CAST(floor({col} / 10) * 10 AS BIGINT)"  # NULL, not an error, past BIGINT
            value = f"CASE WHEN {decade} IS NOT NULL THEN {decade} || '–' || ({decade} + 9) END"
            numbers.append(Facet(f"persona.{field}", f"{field} (range)", value))
    return tuple([facet for _, facet in found][: most - min(len(numbers), 1)] + numbers)[:most]


# each conversation's quality rows summed up once: what failed, whether a blocking one did, and how many
# of the checks ran (passed, as `swarm export` and the run's count have it, needs all of them)
_QUALITY = (
    "(SELECT conversation_id, list(check_name) FILTER (WHERE NOT passed) AS failed, "
    "bool_or(blocking AND NOT passed) AS blocked, count(DISTINCT check_name) FILTER (WHERE list_contains("
    + "["
    + ", ".join(quote(c.name) for c in CHECKS)
    + "], check_name)) AS checks_run "
    "FROM quality GROUP BY conversation_id)"
)


def conversation_listing(persona: tuple[Facet, ...]) -> Listing:
    checked = (
        "CASE WHEN q.blocked IS NULL THEN 'not checked' WHEN q.blocked THEN 'failed' "
        f"WHEN q.checks_run < {len(CHECKS)} THEN 'partly checked' ELSE 'passed' END"
    )
    return Listing(
        source=(
            "FROM conversations c LEFT JOIN personas p ON p.persona_id = c.persona_id "
            f"LEFT JOIN {_QUALITY} q ON q.conversation_id = c.conversation_id"
        ),
        page_source="FROM conversations c LEFT JOIN personas p ON p.persona_id = c.persona_id",
        columns=(
            "c.conversation_id, c.run_id, c.created_at, c.status, c.persona_id, left(p.text, 140) AS persona, "
            "c.metadata->>'$.theme' AS theme, c.metadata->>'$.sentiment' AS sentiment, "
            "left(c.messages->>'$[0].content', 200) AS opening, json_array_length(c.messages) AS turns"
        ),
        key="c.conversation_id",
        sort="c.created_at",
        descending=True,
        facets=(
            Facet("run", "run", "c.run_id"),
            Facet("quality", "quality", checked),
            Facet("failed", "failed check", "q.failed", many=True),
            Facet("theme", "theme", "c.metadata->>'$.theme'"),
            Facet("sentiment", "sentiment", "c.metadata->>'$.sentiment'"),
            Facet("tag", "tag", "TRY_CAST(c.metadata->'$.tags' AS VARCHAR[])", many=True),
            *persona,
        ),
        # the turns' text, not the JSON around it (its keys, quotes written \")
        search="array_to_string(json_extract_string(c.messages, '$[*].content'), ' ')",
        materialize=True,
    )


def persona_listing(persona: tuple[Facet, ...]) -> Listing:
    return Listing(
        source="FROM personas p",
        columns="p.persona_id, left(p.text, 240) AS text, p.layout, p.source, p.imported_at",
        key="p.persona_id",
        sort="p.persona_id",
        descending=False,
        facets=(Facet("layout", "layout", "p.layout"), Facet("import", "import", "p.import_id"), *persona),
        search="p.text",
    )


PAGE_LISTING = Listing(
    source="FROM pages g",
    columns=(
        "g.page_id, g.run_id, g.url, g.host, g.status, coalesce(g.error, 'ok') AS outcome, g.error_detail, "
        "g.title, g.fetched_at, g.bytes, g.rendered"
    ),
    key="g.page_id",
    sort="g.fetched_at",
    descending=True,
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


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _message(value: Any) -> dict[str, str]:
    """A turn as the chat shows it: a role and text (a content that is not text shows as JSON)."""
    if not isinstance(value, dict):
        return {"role": "?", "content": json.dumps(value, ensure_ascii=False)}
    content = value.get("content")
    text = content if isinstance(content, str) else ("" if content is None else json.dumps(content, ensure_ascii=False))
    return {"role": str(value.get("role", "?")), "content": text}


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
    # what the page reads of them, whatever shape a recipe or a hand-edited row gave them
    record["messages"] = [_message(m) for m in _list(record["messages"])]
    record["sources"] = [s for s in _list(record["sources"]) if isinstance(s, dict)]
    record["queries"] = _list(record["queries"])
    for key in ("metadata", "outputs", "failed_steps"):
        value = record[key]
        record[key] = value if isinstance(value, dict) or value is None else {"value": value}
    record["quality"] = fetch_dicts(
        con.execute(
            "SELECT check_name, score, passed, blocking, detail FROM quality WHERE conversation_id = ? "
            "ORDER BY blocking DESC, check_name",
            [conversation_id],
        )
    )
    # every source number the assistant was given, to the page it was: the read step keeps them all,
    # `sources` only those cited
    read = (record["outputs"] or {}).get("read")
    given = _list(read.get("sources")) if isinstance(read, dict) else []
    numbered: dict[int, dict[str, Any]] = {}
    for source in [*given, *(record["sources"] or [])]:
        if isinstance(source, dict) and isinstance(source.get("n"), int) and source.get("page_id"):
            numbered.setdefault(source["n"], {"n": source["n"], "page_id": str(source["page_id"])})
    cited = {s.get("n") for s in record["sources"]}
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
