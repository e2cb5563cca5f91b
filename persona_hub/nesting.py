"""How deep a JSON record nests, and the limit past which it is a `bad_json` reject.

Python's `json` reads by recursion: a record nested about a thousand levels deep raises RecursionError
wherever it is read — the import's JSON documents, the attribute types, a sample's attributes. A persona
record never needs more than a few levels, so one that nests over MAX_DEPTH levels is refused on the
way in, with its depth, in every format alike. DuckDB's JSON functions read such a record without
failing, so the SQL pass can refuse it; the depth is counted in Python only for the rare record that
could be that deep (long enough, with enough opening brackets), never per row.
"""

from __future__ import annotations

import contextlib
import re

import duckdb
import pyarrow as pa

MAX_DEPTH = 512  # far past any persona record, well inside Python's recursion limit (1,000)
UDF_NAME = "swarm_json_depth"
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{\]}]')  # a string (skipped whole, even unclosed) or a bracket


def depth(text: str) -> tuple[int, int]:
    """(the deepest nesting of the JSON `text`, the offset where it first went past MAX_DEPTH, or -1).
    Brackets inside strings do not count; the text need not be valid JSON."""
    level = deepest = 0
    past = -1
    for match in _TOKEN.finditer(text):
        char = match.group()[0]
        if char in "[{":
            level += 1
            if level > deepest:
                deepest = level
                if level == MAX_DEPTH + 1:
                    past = match.start()
        elif char in "]}":
            level -= 1
    return deepest, past


def detail(deepest: int) -> str:
    return f"nested {deepest} levels deep, over the limit of {MAX_DEPTH}"


def _udf(values: pa.ChunkedArray) -> pa.Array:
    return pa.array([None if v is None else depth(v)[0] for v in values.to_pylist()], pa.int64())


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Make `swarm_json_depth(VARCHAR)` (a record's deepest nesting) available on this connection."""
    with contextlib.suppress(duckdb.CatalogException):  # already registered on this connection
        con.create_function(UDF_NAME, _udf, ["VARCHAR"], "BIGINT", type="arrow")  # type: ignore[call-overload]


def too_deep_sql(rec: str) -> str:
    """SQL: whether the JSON text `rec` nests over MAX_DEPTH levels. Nesting that deep takes MAX_DEPTH + 1
    opening and as many closing brackets, so shorter records, and those with fewer opening brackets, are
    passed by byte tests (a CASE, so only the records left are counted in Python)."""
    openings = f"(strlen({rec}) - strlen(replace(replace({rec}, '[', ''), '{{', '')))"
    return (
        f"(CASE WHEN {rec} IS NULL OR strlen({rec}) < {2 * (MAX_DEPTH + 1)} THEN false "
        f"WHEN {openings} <= {MAX_DEPTH} THEN false ELSE {UDF_NAME}({rec}) > {MAX_DEPTH} END)"
    )


def depth_sql(rec: str) -> str:
    """SQL: the deepest nesting of `rec` (for the detail of a record `too_deep_sql` refused)."""
    return f"{UDF_NAME}({rec})"
