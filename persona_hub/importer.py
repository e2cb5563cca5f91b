"""`swarm personas import`: files → `personas`, with provenance, dedup and every bad line accounted for.

Per file: `sources.load` makes `_raw` show its records (a JSONL or TXT file as a stream of blocks, a
Parquet file in place), and `_head` its first lines, whose records give the layout and the attribute
types; one SQL pass over `_raw` (or a Parquet file's own columns: `records`) appends the personas
with text, hash, cleaned attributes and typed columns; the records the pass did not take get their
reasons in `import_rejects` (a second pass, only when some record was not taken for a reason the
reader did not already give). The import is one transaction, so `--strict` can take it all back.
Exact copies — of the hub or of an earlier line — and source ids another persona has are then found,
and removed or renamed in a second transaction (`copies`), with near copies under `--dedup near`
(`near_dedup`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from persona_hub import copies, fields, layouts, near_dedup, nesting, normalise, records, sources
from persona_hub.errors import NoTextField, RejectReason, StrictRefused
from storage import Database
from storage.sql import attribute_sql, json_key_path, new_id, quote

DedupMode = Literal["exact", "near", "none"]
DEFAULT_MAX_CHARS = 4000
IMPORT_MEMORY = "3GB"  # DuckDB's share of an import's memory; the line reader's blocks come on top
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
    layout: str | None = None  # a name in layouts.LAYOUTS: that rule, not detection
    format: str | None = None
    dedup: DedupMode = "exact"
    strict: bool = False
    max_chars: int = DEFAULT_MAX_CHARS
    shown_rejects: int = 50  # rejects kept in the report for printing (all are stored)


def new_import_id() -> str:
    return new_id("imp", timed=True)


def import_files(db: Database, paths: Sequence[str | Path], options: ImportOptions | None = None) -> ImportReport:
    """Import persona files into the hub; see the module docstring. Raises StrictRefused under --strict."""
    options = options or ImportOptions()
    report = ImportReport(import_id=new_import_id())
    started = dt.datetime.now(dt.UTC)
    with db.write() as con:
        normalise.register(con)
        nesting.register(con)
        # lines are numbered explicitly, so DuckDB may write rows in any order (and in parallel)
        con.execute("SET preserve_insertion_order = false")
        # DuckDB keeps what it wrote in memory up to its limit (80 % of the machine by default): 11 GB
        # for 20 million personas, which nothing reads again. Bounded, the import holds what it works on.
        con.execute(f"SET memory_limit = '{IMPORT_MEMORY}'")
        copies.settle_unfinished(con)
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
                    f"{{--strict}}: {report.rejects_total} bad line(s), nothing was imported",
                    [(p, n, r) for p, n, r, _ in report.rejects],
                )
            pending = _find_pending(con, report, options)
            report.status = copies.SETTLING if pending else "finished"
            _record_import(con, report, options, started)
            con.execute("COMMIT")
        except StrictRefused:
            raise
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if pending:
            copies.settle(con, report.import_id)
            report.status = "finished"
    return report


def _find_pending(con: duckdb.DuckDBPyConnection, report: ImportReport, options: ImportOptions) -> bool:
    """Find the copies and taken ids to change after the commit (`copies.find`), and correct each
    file's counts by the copies; whether there is anything to change."""
    if options.dedup == "none":
        return False
    paths = [s.path for s in report.sources]
    by_source, renamed = copies.find(con, report.import_id, paths)
    near = near_dedup.remove_near_duplicates(con, report.import_id, paths) if options.dedup == "near" else {}
    for src in report.sources:
        src.near_duplicates = near.get(src.path, 0)
        src.imported -= by_source.get(src.path, 0) + src.near_duplicates
        src.duplicates = src.records - src.rejected - src.near_duplicates - src.imported
    return bool(by_source or renamed or near)


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
        sources.head(con, raw, fields.TYPE_SAMPLE)
        layout = _layout(con, raw, options, str(path))
        src.layout = layout.name
        with sources.reading(raw.lines):
            _insert_new(con, raw, report, src, layout, options)  # the one pass over the whole file
        sources.read_rejects(con, raw)
        src.records = sources.records(con, raw)
        if _all_taken(con, src):
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _rej AS SELECT line, reason, detail, coalesce(raw, rec) AS raw "
                "FROM _pre WHERE reason IS NOT NULL"
            )
        else:
            sources.rewind(con, raw)
            with sources.reading(raw.lines):
                _find_rejects(con, layout, options.max_chars, report, src)
        _store_rejects(con, report, src, options)
        src.duplicates = src.records - src.rejected - src.near_duplicates - src.imported
    con.execute("DROP VIEW _raw; DROP TABLE _head; DROP TABLE _pre; DROP TABLE _rej")


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
            FROM (SELECT line, rec FROM _head WHERE rec IS NOT NULL AND {_OBJECT} ORDER BY line LIMIT {_KEY_SAMPLE})
        ) GROUP BY k ORDER BY min(line * 1000000 + i)
        """
        ).fetchall()
    ]
    if not keys and options.text_field is None:
        row = con.execute("SELECT count(*) FROM _head WHERE rec IS NOT NULL OR reason IS NOT NULL").fetchone()
        if row and row[0]:
            return layouts.Layout("unknown", "persona", None)  # every record is bad: report them all
        raise NoTextField(f"{source}: no persona records in the file")
    return layouts.detect(
        keys, text_field=options.text_field, id_field=options.id_field, layout=options.layout, source=source
    )


def _text_checks(text: str, max_chars: int) -> tuple[str, str]:
    """SQL tests of a text for empty and too long; byte tests first, so only rare texts are trimmed or counted."""
    return (
        f"(strlen({text}) = 0 OR (ascii({text}) <= 32 AND trim({text}, {_WS}) = ''))",
        f"(strlen({text}) > {int(max_chars)} AND length(trim({text}, {_WS})) > {int(max_chars)})",
    )


def _all_taken(con: duckdb.DuckDBPyConnection, src: SourceReport) -> bool:
    """Whether every record read without fault was appended (copies too, removed later): then the only
    bad ones are those refused while reading, and looking for reasons would be a pass over the file for
    nothing."""
    ((refused,),) = con.execute("SELECT count(*) FROM _pre WHERE reason IS NOT NULL").fetchall()
    return bool(src.records == src.imported + refused)


def _find_rejects(
    con: duckdb.DuckDBPyConnection, layout: layouts.Layout, max_chars: int, report: ImportReport, src: SourceReport
) -> None:
    """`_rej`: every record that is not a persona, with its reason. Only the records the insert did not
    take are looked at again; those of them that are personas were duplicates."""
    text_path = quote(json_key_path(layout.text_field))
    too_long = quote(f" characters, over the limit of {int(max_chars)} (--max-chars)")
    no_field = quote(f"no {layout.text_field!r} field")
    not_string = quote(f"the {layout.text_field!r} field is ")
    over_depth = quote(f" levels deep, over the limit of {nesting.MAX_DEPTH}")
    is_empty, is_too_long = _text_checks("text", max_chars)
    text = normalise.text_sql(f"json_extract(rec, {text_path})", f"json_extract_string(rec, {text_path})")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _rej AS
        SELECT line, reason, detail, coalesce(raw, rtrim(rec, chr(13) || chr(10))) AS raw FROM (
            SELECT line, rec, raw,
                   coalesce(reason, CASE
                        WHEN too_deep THEN {quote(RejectReason.BAD_JSON)}
                        WHEN NOT is_object THEN (CASE WHEN json_valid(rec) THEN {quote(RejectReason.NOT_AN_OBJECT)}
                             ELSE {quote(RejectReason.BAD_JSON)} END)
                        WHEN text_type IS NULL OR text_type = 'NULL' THEN {quote(RejectReason.NO_TEXT)}
                        WHEN text_type <> 'VARCHAR' THEN {quote(RejectReason.TEXT_NOT_STRING)}
                        WHEN {is_empty} THEN {quote(RejectReason.EMPTY_TEXT)}
                        WHEN {is_too_long} THEN {quote(RejectReason.TOO_LONG)}
                   END) AS reason,
                   coalesce(detail, CASE
                        WHEN too_deep THEN 'nested ' || {nesting.depth_sql("rec")} || {over_depth}
                        WHEN NOT is_object THEN NULL
                        WHEN text_type IS NULL THEN {no_field}
                        WHEN text_type <> 'VARCHAR' THEN {not_string} || lower(text_type) || ', not a string'
                        WHEN {is_too_long} THEN length(trim(text, {_WS})) || {too_long}
                   END) AS detail
            FROM (
                SELECT *, CASE WHEN is_object THEN json_type(rec, {text_path}) END AS text_type,
                          CASE WHEN is_object THEN {text} END AS text
                FROM (
                    SELECT *, reason IS NULL AND {_OBJECT} AS is_object,
                              reason IS NULL AND {nesting.too_deep_sql("rec")} AS too_deep
                    FROM _raw
                    WHERE reason IS NOT NULL  -- refused while reading: never a persona, whatever its number
                       OR line NOT IN (SELECT source_line FROM personas WHERE {_this_file(report, src)})
                )
            )
        ) WHERE reason IS NOT NULL
        """
    )


_WS = quote(" \t\n\x0b\x0c\r")  # whitespace, for telling an empty text (trim() takes only spaces)


def _trimmed(expr: str) -> str:
    # trim() copies every string; most texts have nothing to trim, which byte tests at both ends tell
    # (right(x, 1) would count the characters of the whole text). Spaces only, as the stored texts and
    # their hashes (so persona ids) have always been: a text keeps its tabs and line breaks.
    ends = " OR ".join(f"ends_with({expr}, chr({c}))" for c in (32, 9, 10, 11, 12, 13))
    return f"(CASE WHEN ascii({expr}) > 32 AND NOT ({ends}) THEN {expr} ELSE trim({expr}) END)"


def _store_rejects(
    con: duckdb.DuckDBPyConnection, report: ImportReport, src: SourceReport, options: ImportOptions
) -> None:
    con.execute(
        f"""
        INSERT INTO import_rejects
        SELECT {quote(report.import_id)}, {quote(src.path)}, line, reason, detail, left(raw, 500) FROM _rej
        """
    )
    room = max(0, options.shown_rejects - len(report.rejects))
    for line, reason, detail in con.execute(
        f"SELECT line, reason, detail FROM _rej ORDER BY line LIMIT {room}"
    ).fetchall():
        report.rejects.append((src.path, line, reason, detail))
    row = con.execute("SELECT count(*) FROM _rej").fetchone()
    src.rejected = int(row[0]) if row else 0
    report.rejects_total += src.rejected


def _this_file(report: ImportReport, src: SourceReport) -> str:
    return f"import_id = {quote(report.import_id)} AND source = {quote(src.path)}"


def _insert_new(
    con: duckdb.DuckDBPyConnection,
    raw: sources.RawSource,
    report: ImportReport,
    src: SourceReport,
    layout: layouts.Layout,
    options: ImportOptions,
) -> None:
    """One pass over the records: the personas (an object whose text field is a string, neither empty
    nor too long), with text, hash, id, cleaned attributes and typed columns, are appended. Copies and
    near copies among them are removed after the import commits (`copies`): deciding them before the
    insert would take a pass of its own, or a join that reads the whole hub."""
    is_empty, is_too_long = _text_checks("raw_text", options.max_chars)
    whitespace = " OR ".join(f"contains(lowered, chr({c}))" for c in (9, 10, 11, 12, 13))

    def personas_of(picked: str) -> str:  # picked: line, raw_text, source_id, merged, … (`records`)
        return f"""
            SELECT * EXCLUDE (lowered),
                   md5_number(CASE WHEN contains(lowered, '  ') OR {whitespace}
                                   THEN regexp_replace(lowered, '\\s+', ' ', 'g') ELSE lowered END) AS text_hash
            FROM (
                SELECT * EXCLUDE (merged), lower(text) AS lowered,
                       {normalise.list_strings_sql(normalise.null_literals_sql("merged"))} AS attributes
                FROM (
                    SELECT * EXCLUDE (raw_text), {_trimmed("raw_text")} AS text FROM ({picked})
                    WHERE NOT {is_empty} AND NOT {is_too_long}
                )
            )
        """

    file_columns = raw.columns if raw.table is not None and records.usable(raw.columns, layout) else None
    if raw.table is not None and file_columns is not None:
        new = personas_of(records.from_columns(raw.table, file_columns, layout))
        sample = personas_of(records.from_columns(raw.table, file_columns, layout, rows=fields.TYPE_SAMPLE))
    else:
        new, sample = personas_of(records.from_json("_raw", layout)), personas_of(records.from_json("_head", layout))
    found = fields.types_of(con, f"SELECT line, attributes FROM ({sample})")
    columns = fields.prepare_columns(con, report.import_id, found)
    struct, typed = fields.typed_values_sql(columns, "attributes")
    if file_columns is not None:  # a typed column that can take the file's value as it is does
        direct = records.typed_from_columns(file_columns, layout, columns)
        typed = [(column, direct.get(column, sql)) for column, sql in typed]
        if len(direct) == len(typed):
            struct = "NULL"
    hash_id = copies.HASH_ID
    if options.dedup != "none":
        # the source's own id, else the hash's; an id another persona has is replaced after the insert
        # (`copies.find`), as copies are removed: deciding either here would read the whole hub
        persona_id = f"coalesce(source_id, {hash_id})"
    else:  # copies are kept, with ids of their own
        new = f"SELECT *, row_number() OVER (PARTITION BY text_hash ORDER BY line) AS copy FROM ({new})"
        persona_id = hash_id = f"{hash_id} || CASE WHEN copy > 1 THEN '-' || copy ELSE '' END"
        if layout.id_field:
            # the source's own id names the persona unless another persona already has that id
            persona_id = (
                f"CASE WHEN source_id IS NOT NULL AND id_rank = 1 AND source_id NOT IN "
                f"(SELECT persona_id FROM personas) THEN source_id ELSE {hash_id} END"
            )
            new = f"SELECT *, row_number() OVER (PARTITION BY source_id ORDER BY line) AS id_rank FROM ({new})"
    names = ", ".join(fields.CORE_COLUMNS + tuple(fields.ident(c) for c, _ in typed))
    values = "".join(f", {sql}" for _, sql in typed)
    inserted = con.execute(
        f"""
        INSERT INTO personas ({names})
        SELECT {persona_id}, text, attributes, text_hash, {quote(src.path)}, line, source_id,
               {quote(layout.name)}, {quote(report.import_id)}, now(){values}
        FROM (SELECT *, {struct} AS {fields.TYPED} FROM ({new}))
        """
    ).fetchall()
    src.imported = int(inserted[0][0]) if inserted else 0
    this_file = _this_file(report, src)
    # keys the typed sample did not show get their columns now, filled from attributes (rare); a file
    # whose columns fix the keys, all of them in the sample, has none
    fixed = records.attribute_keys(raw.columns, layout)
    if fixed is not None and fixed <= found.keys():
        return
    keys = f"SELECT json_keys(attributes) FROM personas WHERE {this_file}"
    late = fields.late_keys(con, keys, found)
    if late:
        for field, (column, sql_type) in fields.prepare_columns(con, report.import_id, late).items():
            con.execute(
                f"UPDATE personas SET {fields.ident(column)} = {attribute_sql(field, sql_type)} WHERE {this_file}"
            )


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
