"""Cleaning attribute values the way the public datasets need it.

- The literal strings "None", "null", "NaN" and "" mean "no value" in PersonaHub and pandas exports:
  they become JSON null. Done on the compact JSON text in SQL (`:"None"` can only be a value there,
  since a string's closing quote is never followed by a letter), so it costs one pass of `replace`.
- C0 control characters (NUL, BEL, ESC …) are taken out of a persona's text: they are invisible,
  no persona means one, and NUL ends a string for C code and many tokenizers. Vertical tab and form
  feed become spaces (they separate words); tab, line feed and carriage return are kept. The text is
  stored, hashed and deduplicated as cleaned. In JSON a control character is always escaped, so only a
  text whose JSON string has escapes is looked at.
- Lists stored as strings — JSON-encoded (`"[\\"a\\", \\"b\\"]"`, FinePersonas) or Python reprs
  (`"['a', 'b']"`, Nemotron-Personas) — become real lists. Only rows that contain such a value go
  through Python (`ast.literal_eval` is the one parser that reads Python reprs correctly).
"""

from __future__ import annotations

import ast
import contextlib
import json
from typing import Any

import duckdb
import pyarrow as pa

from storage.sql import quote

UDF_NAME = "swarm_parse_list_strings"


_NULL_PATTERN = "':\"(None|null|NaN)?\"'"


def null_literals_sql(expr: str) -> str:
    # regexp_matches with a literal prefix is a fast scan; only matching rows pay for the rewrite
    return (
        f"CASE WHEN regexp_matches({expr}, {_NULL_PATTERN}) "
        f"THEN regexp_replace({expr}, {_NULL_PATTERN}, ':null', 'g') ELSE {expr} END"
    )


_CONTROL = r"[\x00-\x08\x0e-\x1f]"  # C0 but for tab, LF, VT, FF, CR


def _cleaned_sql(text: str) -> str:
    return f"regexp_replace(regexp_replace({text}, '[\\x0b\\x0c]', ' ', 'g'), '{_CONTROL}', '', 'g')"


def text_sql(value: str, text: str) -> str:
    """SQL: `text`, the string the JSON string `value` spells, without control characters. A JSON string
    without escapes is its text in quotes, so only one whose lengths say it has escapes is cleaned (a
    test of two lengths: looking for a backslash cost a pass over every text)."""
    return f"(CASE WHEN strlen({value}) = strlen({text}) + 2 THEN {text} ELSE {_cleaned_sql(text)} END)"


def clean_text_sql(text: str) -> str:
    """SQL: the string `text` without control characters (a text column, not JSON). It is written as
    JSON to find out whether it has any: six times faster than searching it with a regular expression."""
    return text_sql(f"CAST(to_json({text}) AS VARCHAR)", text)


def _parse_list_string(value: str) -> list[Any] | None:
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # a string spelling a list nested past Python's limit
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if isinstance(parsed, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) or v is None for v in parsed):
        return list(parsed)
    return None


def parse_list_strings(record_json: str) -> str:
    """Return the record with every list-looking string value replaced by the list it spells."""
    record = json.loads(record_json)
    if not isinstance(record, dict):
        return record_json
    changed = False
    for key, value in record.items():
        if isinstance(value, str):
            parsed = _parse_list_string(value)
            if parsed is not None:
                record[key] = parsed
                changed = True
    if not changed:
        return record_json
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _udf(values: pa.ChunkedArray) -> pa.Array:
    return pa.array([None if v is None else parse_list_strings(v) for v in values.to_pylist()], pa.string())


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Make `swarm_parse_list_strings(VARCHAR)` available on this connection."""
    with contextlib.suppress(duckdb.CatalogException):  # already registered on this connection
        con.create_function(UDF_NAME, _udf, ["VARCHAR"], "VARCHAR", type="arrow")  # type: ignore[call-overload]


def attributes_sql(rec: str, drop_keys: list[str]) -> str:
    """SQL for every field of record `rec` but `drop_keys`, as compact JSON (clean it with null_literals_sql).

    One json_merge_patch with a null for each key: a third faster than json_remove once a key (each
    call parses and writes the record again); the same output, in the same key order."""
    patch = json.dumps(dict.fromkeys(drop_keys), ensure_ascii=False)
    return f"CAST(json_merge_patch({rec}, {quote(patch)}) AS VARCHAR)"


def list_strings_sql(column: str) -> str:
    """SQL that parses list-looking strings in the attributes `column`, touching only rows that have one."""
    return f"CASE WHEN contains({column}, ':\"[') THEN {UDF_NAME}({column}) ELSE {column} END"
