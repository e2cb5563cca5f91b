"""Reading a persona file of any supported format into one shape: the view `_raw(line, rec, reason, detail, raw)`.

`rec` is one JSON object as text (one record), `line` its line (JSONL, TXT, CSV) or 1-based row/index
(Parquet, JSON array), and `reason` is set when the record was already found bad while reading
(bad encoding, a CSV row with too many columns, a JSON array element that is not an object). Every
format then goes through the same SQL pipeline in `importer`, so each rule is written once; a Parquet
file's personas may be read from its own columns instead (`records`), with the same result.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from persona_hub import encoding, layouts, lines, nesting
from persona_hub.errors import RejectReason, UnsupportedFile
from storage.sql import ident, quote

INPUT_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "txt", "tinytroupe")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "txt",
}


@dataclass
class RawSource:
    path: Path
    format: str
    fixed_layout: str | None = None  # "text" for TXT; "tinytroupe" for agent specs
    converted_from: str | None = None
    lines: lines.Lines | None = None  # the stream `_raw` reads, for JSONL and TXT (read once: see `rewind`)
    table: str | None = None  # a Parquet file's own columns, with `file_row_number` (`records.from_columns`)
    columns: dict[str, str] | None = None  # those columns' DuckDB types, by name


def detect_format(path: Path, override: str | None = None) -> str:
    """The format named by `--format`, else by the extension (`.gz` is looked through)."""
    if override:
        if override not in INPUT_FORMATS:
            raise UnsupportedFile(f"unknown {{--format}} {override!r}; use one of: {', '.join(INPUT_FORMATS)}")
        return override
    name = path.name.lower()
    if name.endswith(".agent.json") or name.endswith(".fragment.json"):
        return "tinytroupe"
    suffixes = [s for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1].lower() if suffixes else ""
    if ext not in _EXTENSIONS:
        raise UnsupportedFile(
            f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; "
            f"pass {{--format}} ({', '.join(INPUT_FORMATS)})"
        )
    return _EXTENSIONS[ext]


@contextmanager
def load(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> Iterator[RawSource]:
    """Make `_raw` show the records of `path`; temp files are removed when the block ends."""
    if not path.is_file():
        raise UnsupportedFile(f"{path}: no such file")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pre (line BIGINT, rec VARCHAR, reason VARCHAR, detail VARCHAR, raw VARCHAR)"
    )
    with _plain_name(path) as readable_path:
        if fmt == "parquet":
            table, columns = _load_parquet(con, readable_path)
            yield RawSource(path, fmt, table=table, columns=columns)
            return
        _create_raw_view(con, "SELECT * FROM _pre WHERE false")
        if fmt in ("json", "tinytroupe"):
            source = _load_json_document(con, readable_path, fmt)
            yield source
            return
        scan = encoding.scan(readable_path, validate=False)  # the line reader checks UTF-8 itself
        try:
            readable = scan.readable_path
            if fmt in ("jsonl", "txt"):
                source = RawSource(path, fmt, "text" if fmt == "txt" else None, scan.converted_from)
                _stream_lines(con, source, readable)
                yield source
            else:
                _load_csv(con, readable, delim="\t" if fmt == "tsv" else ",")
                yield RawSource(path, fmt, converted_from=scan.converted_from)
        finally:
            scan.cleanup()


@contextmanager
def reading(stream: lines.Lines | None) -> Iterator[None]:
    """Raise the reason a stream stopped, rather than DuckDB's report of it, from a query reading it."""
    try:
        yield
    except duckdb.Error:
        if stream is not None and stream.failure is not None:
            raise stream.failure from None
        raise


def head(con: duckdb.DuckDBPyConnection, raw: RawSource, count: int) -> None:
    """`_head`: the records of `_raw` in its first `count` lines, read without reading the whole file."""
    if raw.lines is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _head AS SELECT * FROM _raw WHERE line <= {int(count)}")
        return
    first = lines.Lines(raw.lines.path, limit=count)
    con.register("_head_stream", first.reader())
    with reading(first):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _head AS {_stream_sql('_head_stream', raw.fixed_layout == 'text')}")
    con.unregister("_head_stream")
    _insert_rows(con, [(n, None, reason, detail) for n, reason, detail in first.rejects], table="_head")


def rewind(con: duckdb.DuckDBPyConnection, raw: RawSource) -> None:
    """Let `_raw` be read once more: a stream can be read only once (rare: only when a line is bad)."""
    if raw.lines is not None:
        raw.lines = lines.Lines(raw.lines.path)  # its counts were taken from the first reading
        con.register("_stream", raw.lines.reader())


def records(con: duckdb.DuckDBPyConnection, raw: RawSource) -> int:
    """How many records `_raw` has (after a stream has been read through)."""
    if raw.lines is not None:
        return raw.lines.records
    return int(con.execute("SELECT count(*) FROM _raw").fetchall()[0][0])


def read_rejects(con: duckdb.DuckDBPyConnection, raw: RawSource) -> None:
    """Put the lines the stream refused (bad UTF-8, too long) into `_pre`, where `_raw` shows them."""
    if raw.lines is not None:
        _insert_rows(con, [(n, None, reason, detail) for n, reason, detail in raw.lines.rejects])
        raw.lines.rejects.clear()


_GLOB = re.compile(r"[*?\[\]{}]")


@contextmanager
def _plain_name(path: Path) -> Iterator[Path]:
    """DuckDB reads a path with `*`, `?`, `[` or `{` as a glob pattern (`a[1].jsonl` would read
    `a1.jsonl`): such a file is read through a link with a plain name."""
    if not _GLOB.search(str(path)):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="swarm-import-") as tmp:
        link = Path(tmp) / ("file" + _GLOB.sub("_", "".join(path.suffixes)))
        link.symlink_to(path.resolve())
        try:
            yield link
        except UnsupportedFile as exc:  # the user named the file, not the link: say its name
            raise UnsupportedFile(str(exc).replace(str(link), str(path))) from exc


def _reject_reason(kind: str, message: str, raw: str | None) -> tuple[str, str]:
    """(reason, detail) for a line DuckDB's reader refused."""
    line = (raw or "").strip("\r\n")[:200]
    if kind == "INVALID ENCODING":
        return RejectReason.BAD_ENCODING, f"not UTF-8: {line}"
    if kind == "LINE SIZE OVER MAXIMUM":
        return RejectReason.TOO_LONG, lines.TOO_LONG_DETAIL
    return "csv_" + kind.lower().replace(" ", "_"), f"{message}: {line}"


def _rejected_lines(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[int, str, str, str | None]]:
    """(line, kind, message, raw) of each line DuckDB's reader refused, once a line: its rejects table
    has a row per error, and a line can have several (bad UTF-8 and a column too many)."""
    rows = con.execute(f"SELECT line, error_type, error_message, csv_line FROM {table} ORDER BY line").fetchall()
    by_line: dict[int, tuple[int, str, str, str | None]] = {}
    for line, kind, message, raw in rows:
        if line not in by_line or kind == "INVALID ENCODING":  # the encoding is the line's first fault
            by_line[line] = (int(line), str(kind), str(message), raw)
    return list(by_line.values())


def _renumber(con: duckdb.DuckDBPyConnection, table: str, column: str, rejected: list[int], first: int) -> None:
    """Give the rows of `table` their file line back: DuckDB numbers only the rows it accepted, so
    each row moves down by the rejected lines before it. `first` is the file line of row 1."""
    if not rejected:
        return
    # the k-th rejected line (1-based, in file order) comes after (line - first + 1) - k accepted rows
    shifts = [line - first + 1 - k for k, line in enumerate(sorted(rejected), start=1)]
    con.register("_shifts", pa.table({"after": pa.array(shifts, pa.int64())}))
    con.execute(f"UPDATE {table} SET {column} = {column} + (SELECT count(*) FROM _shifts WHERE after < {column})")
    con.unregister("_shifts")


def _insert_rows(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]], table: str = "_pre") -> None:
    if not rows:
        return
    arrow = pa.table(
        {
            "line": pa.array([r[0] for r in rows], pa.int64()),
            "rec": pa.array([r[1] for r in rows], pa.string()),
            "reason": pa.array([r[2] for r in rows], pa.string()),
            "detail": pa.array([r[3] for r in rows], pa.string()),
        }
    )
    con.register("_rows", arrow)
    con.execute(f"INSERT INTO {table} SELECT line, rec, reason, detail, NULL FROM _rows")
    con.unregister("_rows")


def _create_raw_view(con: duckdb.DuckDBPyConnection, records: str) -> None:
    con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS {records} UNION ALL SELECT * FROM _pre")


def _stream_sql(stream: str, as_text: bool) -> str:
    """The `_raw` rows of a `lines` stream: a line is read with its line end, which JSON allows; a TXT
    line is its trimmed text (spaces only, as the stored texts always were)."""
    rec = "json_object('persona', trim(rtrim(rec, chr(13) || chr(10))))" if as_text else "rec"
    return (
        f"SELECT line, {rec} AS rec, NULL::VARCHAR AS reason, NULL::VARCHAR AS detail, NULL::VARCHAR AS raw "
        f"FROM {stream} WHERE rec IS NOT NULL"
    )


def _stream_lines(con: duckdb.DuckDBPyConnection, source: RawSource, path: Path) -> None:
    source.lines = lines.Lines(path)
    con.register("_stream", source.lines.reader())
    _create_raw_view(con, _stream_sql("_stream", source.fixed_layout == "text"))


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, *, delim: str) -> None:
    src = (
        f"read_csv({quote(str(path))}, header=true, all_varchar=true, delim={quote(delim)}, "
        "store_rejects=true, rejects_table='_csv_rejects', rejects_scan='_csv_scans', "
        f"max_line_size={lines.MAX_LINE_BYTES})"
    )
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _csv AS SELECT row_number() OVER () AS _row, * FROM {src}")
    except duckdb.Error as exc:
        raise UnsupportedFile(f"{path}: not a readable {'TSV' if delim == chr(9) else 'CSV'} file: {exc}") from exc
    columns = [r[0] for r in con.execute("DESCRIBE _csv").fetchall() if r[0] != "_row"]
    rejects = _rejected_lines(con, "_csv_rejects")
    # rows count from the line after the header (one line per record; a quoted multi-line field makes
    # this the record's row)
    _renumber(con, "_csv", "_row", [r[0] for r in rejects], first=2)
    _insert_rows(con, [(line, None, *_reject_reason(kind, message, raw)) for line, kind, message, raw in rejects])
    typed = ", ".join(f"{quote(c)}: {_typed_column(con, c)}" for c in columns)
    con.execute(f"INSERT INTO _pre SELECT _row + 1, to_json({{{typed}}}), NULL, NULL, NULL FROM _csv")
    con.execute("DROP TABLE _csv; DROP TABLE _csv_rejects; DROP TABLE _csv_scans")


def _typed_column(con: duckdb.DuckDBPyConnection, column: str) -> str:
    """Numbers stay numbers, but `02134` (a zip code) and `1e3`-style ids stay text."""
    col = ident(column)
    is_int, is_float = con.execute(
        f"""
        SELECT bool_and(regexp_full_match({col}, '-?(0|[1-9][0-9]{{0,17}})')),
               bool_and(regexp_full_match({col}, '-?(0|[1-9][0-9]*)\\.[0-9]+'))
        FROM _csv WHERE {col} IS NOT NULL
        """
    ).fetchone() or (None, None)
    if is_int:
        return f"CAST({col} AS BIGINT)"
    if is_float:
        return f"CAST({col} AS DOUBLE)"
    return col


def _load_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, dict[str, str]]:
    """Make `_raw` a view of the file's rows as JSON; return the file as a table and its columns' types."""
    src = f"read_parquet({quote(str(path))}, file_row_number=true)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    except duckdb.Error as exc:
        if 'column "file_row_number"' in str(exc):  # the name DuckDB gives the row numbers it reads
            raise UnsupportedFile(
                f"{path}: has a column named file_row_number, the name the import reads row numbers under; "
                "rename the column (or save the file as JSONL) and import it again"
            ) from exc
        raise UnsupportedFile(f"{path}: not a readable Parquet file: {exc}") from exc
    columns = {str(r[0]): str(r[1]) for r in described if r[0] != "file_row_number"}
    fields = ", ".join(f"{quote(c)}: {ident(c)}" for c in columns)
    # a view, not a table: DuckDB reads the file on every core each time, and memory holds no copy of it
    _create_raw_view(
        con,
        f"SELECT file_row_number + 1 AS line, CAST(to_json({{{fields}}}) AS VARCHAR) AS rec, NULL::VARCHAR AS reason, "
        f"NULL::VARCHAR AS detail, NULL::VARCHAR AS raw FROM {src}",
    )
    return src, columns


def _load_json_document(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> RawSource:
    scan = encoding.scan(path)
    try:
        if scan.bad_lines:
            raise UnsupportedFile(
                f"{path}: not UTF-8 (line {scan.bad_lines[0][0]}: {scan.bad_lines[0][1]!r}); "
                "a JSON document cannot be read in part: re-save it as UTF-8"
            )
        text = scan.readable_path.read_text(encoding="utf-8-sig")
    finally:
        scan.cleanup()
    stripped = text.lstrip()
    if fmt == "json" and stripped.startswith("{") and _looks_like_jsonl(stripped):
        # JSON Lines saved with a .json extension: read it as such, with line numbers.
        source = RawSource(path, "jsonl")
        _stream_lines(con, source, path)
        return source
    try:
        document = json.loads(text)
        rows, source = _document_rows(document, path, fmt)
    except json.JSONDecodeError as exc:
        rows, source = (
            [(exc.lineno, None, RejectReason.BAD_JSON, f"{exc.msg} (column {exc.colno})")],
            RawSource(path, fmt),
        )
    except RecursionError:  # Python reads and writes JSON by recursion: a document too deep for it
        rows, source = [_too_deep(text)], RawSource(path, fmt)
    _insert_rows(con, rows)
    return source


def _document_rows(document: Any, path: Path, fmt: str) -> tuple[list[tuple[Any, ...]], RawSource]:
    """The `_pre` rows of a parsed JSON document. A record nested past nesting.MAX_DEPTH but readable
    by Python is refused by the SQL pass, as it is in JSON Lines."""
    if isinstance(document, dict) and isinstance(document.get("persona"), dict):
        source = RawSource(path, "tinytroupe", fixed_layout="tinytroupe")
        if document.get("type") == "Fragment":
            detail = "a TinyTroupe Fragment is a partial persona; merge it into an agent spec"
            return [(1, None, RejectReason.TINYTROUPE_FRAGMENT, detail)], source
        return [(1, json.dumps(layouts.tinytroupe_record(document), ensure_ascii=False), None, None)], source
    records = _records_of(document)
    if records is None:
        detail = "a JSON file must hold an array of persona objects (or one object)"
        return [(1, None, "not_an_array", detail)], RawSource(path, fmt)
    rows = [
        (i, json.dumps(r, ensure_ascii=False), None, None)
        if isinstance(r, dict)
        else (i, None, RejectReason.NOT_AN_OBJECT, f"element is {type(r).__name__}: {json.dumps(r)[:200]}")
        for i, r in enumerate(records, start=1)
    ]
    return rows, RawSource(path, fmt)


def _too_deep(text: str) -> tuple[int, None, str, str]:
    """The reject of a JSON document Python cannot read for its depth: at the line where it goes past
    the limit. A JSON document cannot be read in part, so none of its records is taken."""
    deepest, past = nesting.depth(text)
    line = text.count("\n", 0, past) + 1 if past >= 0 else 1
    if deepest > nesting.MAX_DEPTH:
        why = nesting.detail(deepest)
    else:  # Python's limit counts its own calls too: rare, and only just under ours
        why = f"nested {deepest} levels deep, more than Python's JSON reader takes"
    return line, None, RejectReason.BAD_JSON, f"{why}: the document cannot be read"


def _looks_like_jsonl(text: str) -> bool:
    first, _, rest = text.partition("\n")
    if not rest.strip():
        return False
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False
    except RecursionError:  # too deep to read alone: read as lines, each taken or refused on its own
        return True


def _records_of(document: Any) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lists = [v for v in document.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:  # {"personas": [...]} and similar wrappers
            return lists[0]
        return [document]
    return None
