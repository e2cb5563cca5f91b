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

DedupMode = Literal["exact", "near", "none"]
DEFAULT_MAX_CHARS = 4000
_KEY_SAMPLE = 1000  # records whose keys decide the layout
_WS = " OR ".join(f"contains(_t, chr({c}))" for c in (9, 10, 11, 12, 13)) + " OR contains(_t, '  ')"


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
    return "imp_" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "_" + secrets.token_hex(3)


def import_files(db: Database, paths: Sequence[str | Path], options: ImportOptions | None = None) -> ImportReport:
    """Import persona files into the hub; see the module docstring. Raises StrictRefused under --strict."""
    options = options or ImportOptions()
    report = ImportReport(import_id=new_import_id())
    started = dt.datetime.now(dt.timezone.utc)
    with db.write() as con:
        normalise.register(con)
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
            fields.update_catalog(con, report.import_id, f"import_id = {sql_str(report.import_id)}")
            _record_import(con, report, options, started)
            con.execute("COMMIT")
        except StrictRefused:
            raise
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return report


def _import_one(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, options: ImportOptions,
                report: ImportReport, src: SourceReport) -> None:
    with sources.load(con, path, fmt) as raw:
        src.format = raw.format
        _validate(con)
        layout = _layout(con, raw, options, str(path))
        src.layout = layout.name
        _extract(con, layout, options.max_chars)
        counts = con.execute(
            "SELECT count(*) FILTER (WHERE rec IS NOT NULL OR reason IS NOT NULL),"
            " count(*) FILTER (WHERE reason IS NOT NULL) FROM _cand"
        ).fetchone() or (0, 0)
        src.records, src.rejected = int(counts[0]), int(counts[1])
        _store_rejects(con, report, str(path), options)
        _dedup_and_insert(con, report, src, layout, options)


def _validate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        UPDATE _raw SET reason = CASE WHEN NOT json_valid(rec) THEN 'bad_json' ELSE 'not_an_object' END,
                        detail = left(rec, 200), rec = NULL
        WHERE rec IS NOT NULL AND reason IS NULL AND (NOT json_valid(rec) OR json_type(rec) <> 'OBJECT')
        """
    )


def _layout(con: duckdb.DuckDBPyConnection, raw: sources.RawSource, options: ImportOptions,
            source: str) -> layouts.Layout:
    if raw.fixed_layout == "text":
        return layouts.Layout("text", "persona", None)
    if raw.fixed_layout == "tinytroupe":
        return layouts.Layout("tinytroupe", "persona", None)
    keys = [r[0] for r in con.execute(
        f"SELECT DISTINCT unnest(json_keys(rec)) FROM (SELECT rec FROM _raw WHERE rec IS NOT NULL"
        f" ORDER BY line LIMIT {_KEY_SAMPLE})"
    ).fetchall()]
    if not keys and options.text_field is None:
        has_bad = con.execute("SELECT count(*) FROM _raw WHERE reason IS NOT NULL").fetchone()
        if has_bad and has_bad[0]:
            return layouts.Layout("unknown", "persona", None)  # every line bad: just report them
        raise NoTextField(f"{source}: no persona records in the file")
    return layouts.detect(keys, text_field=options.text_field, id_field=options.id_field, source=source)


def _extract(con: duckdb.DuckDBPyConnection, layout: layouts.Layout, max_chars: int) -> None:
    text_path = sql_str(fields.json_path(layout.text_field))
    id_sql = f"rec->>{sql_str(fields.json_path(layout.id_field))}" if layout.id_field else "NULL"
    drop = [layout.text_field] + ([layout.id_field] if layout.id_field else [])
    attrs = normalise.attributes_sql("rec", drop)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _cand AS
        SELECT line, rec, reason, detail, text, text_hash, source_id,
               CASE WHEN reason IS NULL THEN {normalise.list_strings_sql('attributes')} END AS attributes
        FROM (
            SELECT line, rec, source_id, text,
                   CASE WHEN reason IS NOT NULL OR rec IS NULL THEN NULL ELSE {attrs} END AS attributes,
                   CASE WHEN reason IS NOT NULL OR rec IS NULL THEN NULL
                        ELSE md5(CASE WHEN {_WS.replace('_t', 'lower(text)')}
                                      THEN regexp_replace(lower(text), '\\s+', ' ', 'g')
                                      ELSE lower(text) END) END AS text_hash,
                   coalesce(reason, CASE
                        WHEN rec IS NULL THEN NULL
                        WHEN text_type IS NULL OR text_type = 'NULL' THEN 'no_text'
                        WHEN text_type <> 'VARCHAR' THEN 'text_not_string'
                        WHEN text = '' THEN 'empty_text'
                        WHEN length(text) > {int(max_chars)} THEN 'too_long'
                   END) AS reason,
                   coalesce(detail, CASE
                        WHEN text_type IS NULL THEN {sql_str(f"no {layout.text_field!r} field")}
                        WHEN length(text) > {int(max_chars)}
                             THEN length(text) || ' characters, over the limit of {int(max_chars)}'
                   END) AS detail
            FROM (
                SELECT line, rec, reason, detail, json_type(rec, {text_path}) AS text_type,
                       trim(rec->>{text_path}) AS text, {id_sql} AS source_id
                FROM _raw
            )
        )
        """
    )


def _store_rejects(con: duckdb.DuckDBPyConnection, report: ImportReport, source: str,
                   options: ImportOptions) -> None:
    con.execute(
        f"""
        INSERT INTO import_rejects
        SELECT {sql_str(report.import_id)}, {sql_str(source)}, line, reason, detail, left(rec, 500)
        FROM _cand WHERE reason IS NOT NULL
        """
    )
    room = max(0, options.shown_rejects - len(report.rejects))
    for line, reason, detail in con.execute(
        f"SELECT line, reason, detail FROM _cand WHERE reason IS NOT NULL ORDER BY line LIMIT {room}"
    ).fetchall():
        report.rejects.append((source, line, reason, detail))
    got = con.execute("SELECT count(*) FROM _cand WHERE reason IS NOT NULL").fetchone()
    report.rejects_total += int(got[0]) if got else 0


def _dedup_and_insert(con: duckdb.DuckDBPyConnection, report: ImportReport, src: SourceReport,
                      layout: layouts.Layout, options: ImportOptions) -> None:
    good = "reason IS NULL AND rec IS NOT NULL"
    if options.dedup == "none":
        keep = good
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _hub_hashes AS SELECT DISTINCT text_hash FROM personas"
        )
        keep = (f"{good} AND first_of_hash AND text_hash NOT IN (SELECT text_hash FROM _hub_hashes)")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _new AS
        SELECT line, text, text_hash, source_id, attributes FROM (
            SELECT *, row_number() OVER (PARTITION BY text_hash ORDER BY line) = 1 AS first_of_hash
            FROM _cand WHERE {good}
        ) WHERE {keep}
        """
    )
    good_count = con.execute(f"SELECT count(*) FROM _cand WHERE {good}").fetchone()
    new_count = con.execute("SELECT count(*) FROM _new").fetchone()
    src.duplicates = int(good_count[0] if good_count else 0) - int(new_count[0] if new_count else 0)
    if options.dedup == "near":
        src.near_duplicates = near_dedup.remove_near_duplicates(con, report.import_id, src.path)
    # The source's own id names the persona unless another persona already has that id.
    con.execute(
        f"""
        INSERT INTO personas
        SELECT CASE WHEN source_id IS NOT NULL AND id_rank = 1
                         AND source_id NOT IN (SELECT persona_id FROM personas)
                    THEN source_id ELSE 'p_' || left(text_hash, 20) END,
               text, attributes, text_hash, {sql_str(src.path)}, line, source_id, {sql_str(layout.name)},
               {sql_str(report.import_id)}, now()
        FROM (SELECT *, row_number() OVER (PARTITION BY source_id ORDER BY line) AS id_rank FROM _new)
        ORDER BY line
        """
    )
    inserted = con.execute("SELECT count(*) FROM _new").fetchone()
    src.imported = int(inserted[0]) if inserted else 0
    con.execute("DROP TABLE _new; DROP TABLE _cand; DROP TABLE IF EXISTS _hub_hashes; DROP TABLE _raw")


def _record_import(con: duckdb.DuckDBPyConnection, report: ImportReport, options: ImportOptions,
                   started: dt.datetime) -> None:
    con.execute(
        "INSERT INTO imports VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?, ?)",
        [
            report.import_id, started, report.status,
            json.dumps([asdict(s) for s in report.sources]),
            json.dumps(asdict(options)),
            report.total("imported"), report.total("duplicates"), report.total("near_duplicates"),
            report.rejects_total,
        ],
    )


def _record_refusal(con: duckdb.DuckDBPyConnection, report: ImportReport, options: ImportOptions,
                    started: dt.datetime) -> None:
    """A refused --strict import still leaves its record and its bad lines, so the user can see why."""
    con.execute("BEGIN TRANSACTION")
    _record_import(con, report, options, started)
    con.executemany(
        "INSERT INTO import_rejects VALUES (?, ?, ?, ?, ?, NULL)",
        [[report.import_id, p, n, r, d] for p, n, r, d in report.rejects],
    )
    con.execute("COMMIT")
