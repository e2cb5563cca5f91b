"""`swarm personas import`: files → `personas`, with provenance, dedup and every bad line accounted for.

Per file: `sources.load` fills `_raw`; one SQL pass validates each record, picks its text by the
layout, cleans its attributes and hashes the normalised text; rows with a reason go to
`import_rejects`, the rest are deduplicated (exact: within the file and against the hub; optionally
near: MinHash) and appended. The whole import is one transaction, so `--strict` can take it all back.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from persona_hub import fields, layouts, near_dedup, normalise, sources
from persona_hub.errors import NoTextField, StrictRefused
from persona_hub.sources import sql_str
from storage import Database
from storage.migrations import json_key_path

DedupMode = Literal["exact", "near", "none"]
DEFAULT_MAX_CHARS = 4000
_KEY_SAMPLE = 1000  # records whose keys decide the layout


@dataclass
class SourceReport:
    path: str
    format: str
    layout: str | None = None
    records: int = 0
    imported: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    rejected: int = 0
    error: str | None = None


@dataclass
class ImportReport:
    import_id: str
    sources: list[SourceReport] = field(default_factory=list)
    rejects: list[tuple[str, int | None, str, str | None]] = field(default_factory=list)
    rejects_total: int = 0
    status: str = "finished"

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.sources)


@dataclass
class ImportOptions:
    text_field: str | None = None
    id_field: str | None = None
    format: str | None = None
    dedup: DedupMode = "exact"
    strict: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    shown_rejects: int = 50  # rejects kept in the report for printing (all are stored)


def new_import_id() -> str:
    return "imp_" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "_" + secrets.token_hex(3)


def import_files(db: Database, paths: Sequence[str | Path], options: ImportOptions | None = None) -> ImportReport:
    """Import persona files into the hub; see the module docstring. Raises StrictRefused under --strict."""
    options = options or ImportOptions()
    report = ImportReport(import_id=new_import_id())
    started = dt.datetime.now(dt.UTC)
    with db.write() as con:
        normalise.register(con)
        # lines are numbered explicitly, so DuckDB may write rows in any order (and in parallel)
        con.execute("SET preserve_insertion_order = false")
        con.execute("BEGIN TRANSACTION")
        try:
            for raw_path in paths:
                path = Path(raw_path)
                fmt = sources.detect_format(path, options.format)
                src_report = SourceReport(path=str(path), format=fmt)
                report.sources.append(src_report)
                _import_one(con, path, fmt, options, report, src_report)
            if options.strict and report.rejects_total:
                con.execute("ROLLBACK")
                report.status = "strict_refused"
                for s in report.sources:
                    s.imported = s.duplicates = s.near_duplicates = 0
                _record_refusal(con, report, options, started)
                raise StrictRefused(
                    f"--strict: {report.rejects_total} bad line(s), nothing was imported",
                    [(p, n, r) for p, n, r, _ in report.rejects],
                )
            _record_import(con, report, options, started)
            con.execute("COMMIT")
        except StrictRefused:
            raise
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return report


def _import_one(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    options: ImportOptions,
    report: ImportReport,
    src: SourceReport,
) -> None:
    with sources.load(con, path, fmt) as raw:
        src.format = raw.format
        layout = _layout(con, raw, options, str(path))
        src.layout = layout.name
        _find_personas(con, layout, options.max_chars)
        _find_rejects(con, layout, options.max_chars)
        _store_rejects(con, report, src, options)
        _insert_new(con, report, src, layout, options)
    con.execute("DROP VIEW _raw; DROP TABLE _lines; DROP TABLE _pre; DROP TABLE _rej; DROP TABLE _h")


_OBJECT = "coalesce(try(json_type(rec)) = 'OBJECT', false)"


def _layout(
    con: duckdb.DuckDBPyConnection, raw: sources.RawSource, options: ImportOptions, source: str
) -> layouts.Layout:
    if raw.fixed_layout == "text":
        return layouts.Layout("text", "persona", None)
    if raw.fixed_layout == "tinytroupe":
        return layouts.Layout("tinytroupe", "persona", None)
    keys = [
        r[0]
        for r in con.execute(  # in the order the file first uses them, for messages
            f"""
        SELECT k FROM (
            SELECT line, unnest(json_keys(rec)) AS k, generate_subscripts(json_keys(rec), 1) AS i
            FROM (SELECT line, rec FROM _raw WHERE rec IS NOT NULL AND {_OBJECT} ORDER BY line LIMIT {_KEY_SAMPLE})
        ) GROUP BY k ORDER BY min(line * 1000000 + i)
        """
        ).fetchall()
    ]
    if not keys and options.text_field is None:
        row = con.execute("SELECT count(*) FROM _raw WHERE rec IS NOT NULL OR reason IS NOT NULL").fetchone()
        if row and row[0]:
            return layouts.Layout("unknown", "persona", None)  # every record is bad: report them all
        raise NoTextField(f"{source}: no persona records in the file")
    return layouts.detect(keys, text_field=options.text_field, id_field=options.id_field, source=source)


def _text_checks(text: str, max_chars: int) -> tuple[str, str]:
    """SQL tests of a text for empty and too long; byte tests first, so only rare texts are trimmed or counted."""
    return (
        f"(strlen({text}) = 0 OR (ascii({text}) <= 32 AND trim({text}, {_WS}) = ''))",
        f"(strlen({text}) > {int(max_chars)} AND length(trim({text}, {_WS})) > {int(max_chars)})",
    )


def _find_personas(con: duckdb.DuckDBPyConnection, layout: layouts.Layout, max_chars: int) -> None:
    """Pass 1, one JSON parse a record: `_h(line, text_hash)` for every record that is a persona.

    A record is one when it is an object whose text field is a string, neither empty nor too long;
    `_find_rejects` gives every other record its reason."""
    text_path = sql_str(json_key_path(layout.text_field))
    is_empty, is_too_long = _text_checks("text", max_chars)
    whitespace = " OR ".join(f"contains(lowered, chr({c}))" for c in (9, 10, 11, 12, 13))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _h AS
        SELECT line, md5_number(CASE WHEN contains(lowered, '  ') OR {whitespace}
                                     THEN regexp_replace(lowered, '\\s+', ' ', 'g') ELSE lowered END) AS text_hash
        FROM (
            SELECT line, lower({_trimmed("text")}) AS lowered FROM (
                SELECT line, value->>'$' AS text FROM (
                    SELECT line, try(json_extract(rec, {text_path})) AS value FROM _raw WHERE rec IS NOT NULL
                ) WHERE starts_with(value, '"')  -- a JSON string (an object's field: rec is an object)
            ) WHERE NOT {is_empty} AND NOT {is_too_long}
        )
        """
    )


def _find_rejects(con: duckdb.DuckDBPyConnection, layout: layouts.Layout, max_chars: int) -> None:
    """`_rej`: every record pass 1 did not take, with its reason (only these rows are looked at again)."""
    text_path = sql_str(json_key_path(layout.text_field))
    too_long = sql_str(f" characters, over the limit of {int(max_chars)} (--max-chars)")
    no_field = sql_str(f"no {layout.text_field!r} field")
    is_empty, is_too_long = _text_checks("text", max_chars)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _rej AS
        SELECT line, reason, detail, coalesce(raw, rec) AS raw FROM (
            SELECT line, rec, raw,
                   coalesce(reason, CASE
                        WHEN NOT is_object THEN (CASE WHEN json_valid(rec) THEN 'not_an_object' ELSE 'bad_json' END)
                        WHEN text_type IS NULL OR text_type = 'NULL' THEN 'no_text'
                        WHEN text_type <> 'VARCHAR' THEN 'text_not_string'
                        WHEN {is_empty} THEN 'empty_text'
                        WHEN {is_too_long} THEN 'too_long'
                        ELSE 'unreadable'  -- never expected: a record is taken or rejected, not lost
                   END) AS reason,
                   coalesce(detail, CASE
                        WHEN NOT is_object THEN NULL
                        WHEN text_type IS NULL THEN {no_field}
                        WHEN {is_too_long} THEN length(trim(text, {_WS})) || {too_long}
                   END) AS detail
            FROM (
                SELECT *, CASE WHEN is_object THEN json_type(rec, {text_path}) END AS text_type,
                          CASE WHEN is_object THEN json_extract_string(rec, {text_path}) END AS text
                FROM (
                    SELECT *, reason IS NULL AND {_OBJECT} AS is_object
                    FROM _raw WHERE line NOT IN (SELECT line FROM _h)
                )
            )
        )
        """
    )


_WS = sql_str(" \t\n\x0b\x0c\r")  # what trim() takes off a text (by default it takes only spaces)


def _trimmed(expr: str) -> str:
    # trim() copies every string; most texts have nothing to trim, which byte tests at both ends tell
    # (right(x, 1) would count the characters of the whole text)
    ends = " OR ".join(f"ends_with({expr}, chr({c}))" for c in (32, 9, 10, 11, 12, 13))
    return f"(CASE WHEN ascii({expr}) > 32 AND NOT ({ends}) THEN {expr} ELSE trim({expr}, {_WS}) END)"


def _store_rejects(
    con: duckdb.DuckDBPyConnection, report: ImportReport, src: SourceReport, options: ImportOptions
) -> None:
    con.execute(
        f"""
        INSERT INTO import_rejects
        SELECT {sql_str(report.import_id)}, {sql_str(src.path)}, line, reason, detail, left(raw, 500) FROM _rej
        """
    )
    room = max(0, options.shown_rejects - len(report.rejects))
    for line, reason, detail in con.execute(
        f"SELECT line, reason, detail FROM _rej ORDER BY line LIMIT {room}"
    ).fetchall():
        report.rejects.append((src.path, line, reason, detail))
    counts = con.execute("SELECT (SELECT count(*) FROM _raw), (SELECT count(*) FROM _rej)").fetchone()
    src.records, src.rejected = (int(counts[0]), int(counts[1])) if counts else (0, 0)
    report.rejects_total += src.rejected


def _insert_new(
    con: duckdb.DuckDBPyConnection,
    report: ImportReport,
    src: SourceReport,
    layout: layouts.Layout,
    options: ImportOptions,
) -> None:
    """Pass 2, over the new personas only: text, id, attributes and their typed columns, appended."""
    text_path = sql_str(json_key_path(layout.text_field))
    id_sql = f"rec->>{sql_str(json_key_path(layout.id_field))}" if layout.id_field else "NULL::VARCHAR"
    drop = [layout.text_field] + ([layout.id_field] if layout.id_field else [])
    keep = "SELECT line, text_hash FROM _h"
    if options.dedup != "none":
        # Which lines to keep is decided on (line, hash) pairs only: the first line of each text, unless
        # the hub has that text already. Carrying the texts and attributes through that aggregate cost
        # more than all the rest of this step; they are read for the kept lines alone, below.
        keep = """
            SELECT min(line) AS line, text_hash FROM _h
            WHERE text_hash NOT IN (SELECT text_hash FROM personas) GROUP BY text_hash
        """
    con.execute(f"CREATE OR REPLACE TEMP TABLE _keep AS {keep}")

    def new_from(keep_table: str) -> str:
        merged = normalise.attributes_sql("rec", drop)
        return f"""
            SELECT line, {_trimmed(f"rec->>{text_path}")} AS text, {id_sql} AS source_id, text_hash,
                   {normalise.list_strings_sql(normalise.null_literals_sql("merged"))} AS attributes
            FROM (SELECT *, {merged} AS merged FROM _raw JOIN {keep_table} USING (line))
        """

    new = new_from("_keep")
    sample = new_from(f"(SELECT * FROM _keep ORDER BY line LIMIT {fields.TYPE_SAMPLE})")
    keys = "SELECT json_keys(rec) FROM _raw JOIN _keep USING (line)"
    if options.dedup == "near":
        con.execute(f"CREATE OR REPLACE TEMP TABLE _new AS {new}")
        src.near_duplicates = near_dedup.remove_near_duplicates(con, report.import_id, src.path)
        new = "SELECT * FROM _new"
        sample = f"SELECT * FROM _new ORDER BY line LIMIT {fields.TYPE_SAMPLE}"
        keys = "SELECT json_keys(attributes) FROM _new"
    found, late = fields.types_of(con, f"SELECT line, attributes FROM ({sample})", keys)
    late = [key for key in late if key not in drop]
    columns = fields.prepare_columns(con, report.import_id, found, late)
    struct, typed = fields.typed_values_sql(columns, "attributes")
    persona_id = "'p_' || lpad(to_hex(CAST(text_hash >> 64 AS UBIGINT)), 16, '0')"
    if layout.id_field:
        # The source's own id names the persona unless another persona already has that id.
        persona_id = (
            f"CASE WHEN source_id IS NOT NULL AND id_rank = 1 AND source_id NOT IN "
            f"(SELECT persona_id FROM personas) THEN source_id ELSE {persona_id} END"
        )
        new = f"SELECT *, row_number() OVER (PARTITION BY source_id ORDER BY line) AS id_rank FROM ({new})"
    names = ", ".join(fields.CORE_COLUMNS + tuple(fields.ident(c) for c, _ in typed))
    values = "".join(f", {sql}" for _, sql in typed)
    inserted = con.execute(
        f"""
        INSERT INTO personas ({names})
        SELECT {persona_id}, text, attributes, text_hash, {sql_str(src.path)}, line, source_id,
               {sql_str(layout.name)}, {sql_str(report.import_id)}, now(){values}
        FROM (SELECT *, {struct} AS {fields.TYPED} FROM ({new}))
        """
    ).fetchall()
    src.imported = int(inserted[0][0]) if inserted else 0
    src.duplicates = src.records - src.rejected - src.near_duplicates - src.imported
    con.execute("DROP TABLE IF EXISTS _new; DROP TABLE IF EXISTS _keep")


def _record_import(
    con: duckdb.DuckDBPyConnection, report: ImportReport, options: ImportOptions, started: dt.datetime
) -> None:
    con.execute(
        "INSERT INTO imports VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?, ?)",
        [
            report.import_id,
            started,
            report.status,
            json.dumps([asdict(s) for s in report.sources]),
            json.dumps(asdict(options)),
            report.total("imported"),
            report.total("duplicates"),
            report.total("near_duplicates"),
            report.rejects_total,
        ],
    )


def _record_refusal(
    con: duckdb.DuckDBPyConnection, report: ImportReport, options: ImportOptions, started: dt.datetime
) -> None:
    """A refused --strict import still leaves its record and its bad lines, so the user can see why."""
    con.execute("BEGIN TRANSACTION")
    _record_import(con, report, options, started)
    con.executemany(
        "INSERT INTO import_rejects VALUES (?, ?, ?, ?, ?, NULL)",
        [[report.import_id, p, n, r, d] for p, n, r, d in report.rejects],
    )
    con.execute("COMMIT")
