"""The attribute catalogue (`persona_fields`) and the typed attribute columns of `personas`.

Every attribute key is also a typed column of `personas` (and of its alias `personas_flat`), written
by the import, so a filter reads `age > 40 AND occupation = 'nurse'` from columns rather than parsing
JSON per row, and a list column works with `list_contains(topics, 'chess')`. Types come from DuckDB's
`json_structure` of a file's first records, widened (and the column rewritten) when files disagree.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from storage.sql import attribute_sql, column_type, free_column_name, ident, quote

CORE_COLUMNS = (
    "persona_id",
    "text",
    "attributes",
    "text_hash",
    "source",
    "source_line",
    "source_id",
    "layout",
    "import_id",
    "imported_at",
)
_INTS = {"UBIGINT", "BIGINT", "INTEGER", "UINTEGER", "SMALLINT", "TINYINT", "HUGEINT"}


def _scalar_type(structure: Any) -> str:
    if isinstance(structure, dict):
        return "JSON"
    if isinstance(structure, list):
        inner = _scalar_type(structure[0]) if structure else "NULL"
        return f"{inner}[]" if inner in ("VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "NULL") else "JSON"
    if structure in _INTS:
        return "BIGINT"
    if structure in ("DOUBLE", "BOOLEAN", "VARCHAR"):
        return str(structure)
    if structure == "NULL":
        return "NULL"
    return "VARCHAR"  # mixed scalars: compare as text


def types_from_structure(structure_json: str | None) -> dict[str, str]:
    """Map each top-level key of a `json_structure` result to the SQL type of its column ("NULL[]": a
    list with no value yet, which any other list type widens)."""
    if not structure_json:
        return {}
    structure = json.loads(structure_json)
    if not isinstance(structure, dict):
        return {}
    return {key: _scalar_type(value) for key, value in structure.items()}


def widen(old: str, new: str) -> str:
    if old == new or new == "NULL":
        return old
    if old == "NULL":
        return new
    if old == "NULL[]" and new.endswith("[]"):
        return new
    if new == "NULL[]" and old.endswith("[]"):
        return old
    if {old, new} == {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    if old.endswith("[]") or new.endswith("[]") or "JSON" in (old, new):
        return "JSON"
    return "VARCHAR"


TYPE_SAMPLE = 20_480  # the lines whose records set the column types (as many as DuckDB's read_json samples)


def types_of(con: duckdb.DuckDBPyConnection, sample_sql: str) -> dict[str, str]:
    """Attribute keys with their types, from the `attributes` of `sample_sql` (`line, attributes` of up
    to TYPE_SAMPLE lines)."""
    # Distinct per-record structures, widened here: json_group_structure string-aggregates every
    # record into one document first, three times slower on 100,000 records.
    found: dict[str, str] = {}
    for (structure,) in con.execute(
        f"SELECT json_structure(CAST(attributes AS JSON)) AS s FROM ({sample_sql}) GROUP BY s ORDER BY min(line)"
    ).fetchall():
        for key, sql_type in types_from_structure(structure).items():
            found[key] = widen(found.get(key, "NULL"), sql_type)
    return found


def late_keys(con: duckdb.DuckDBPyConnection, keys_sql: str, found: dict[str, str]) -> dict[str, str]:
    """Keys in `keys_sql` (one column of key lists) that `found` lacks: seen only past the typed sample,
    they keep the type the hub has for them, or are text."""
    known = dict(con.execute("SELECT field, sql_type FROM persona_fields").fetchall())
    keys = [r[0] for r in con.execute(f"SELECT DISTINCT unnest(k) FROM ({keys_sql}) AS _keys(k)").fetchall()]
    return {key: known.get(key, "VARCHAR") for key in keys if key not in found}


def prepare_columns(
    con: duckdb.DuckDBPyConnection, import_id: str, found: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """Give every key in `found` its typed column in `personas`, adding or widening columns and the
    catalogue (`persona_fields`) as needed; return each key's (column, type) for the insert."""
    known = {f: (c, t) for f, t, c in con.execute("SELECT field, sql_type, column_name FROM persona_fields").fetchall()}
    taken = {r[0].lower() for r in con.execute("DESCRIBE personas").fetchall()}
    out: dict[str, tuple[str, str]] = {}
    for field, sql_type in found.items():
        if field in known:
            column, old = known[field]
            wider = widen(old, sql_type)
            if wider != old:
                # recomputed from attributes, as the column would have been had it been this type from the start
                con.execute(
                    f"ALTER TABLE personas ALTER {ident(column)} TYPE {column_type(wider)} "
                    f"USING {attribute_sql(field, wider)}"
                )
                con.execute("UPDATE persona_fields SET sql_type = ? WHERE field = ?", [wider, field])
            out[field] = (column, wider)
        else:
            column = free_column_name(f"attr_{field}" if field.lower() in CORE_COLUMNS or not field else field, taken)
            con.execute(f"ALTER TABLE personas ADD COLUMN {ident(column)} {column_type(sql_type)}")
            comment_attribute_column(con, column, field)
            con.execute("INSERT INTO persona_fields VALUES (?, ?, ?, ?)", [field, sql_type, column, import_id])
            out[field] = (column, sql_type)
    return out


TYPED = "_typed"  # the column typed_values_sql's values read from


def typed_values_sql(columns: dict[str, tuple[str, str]], attributes: str) -> tuple[str, list[tuple[str, str]]]:
    """SQL for a struct `_typed` made from the JSON `attributes`, and (column, SQL) pairs that give each
    typed column its value (from `_typed`, or from `attributes` itself).

    One json_transform reads all keys in a single parse; keys equal but for case cannot share its
    structure (DuckDB's struct fields ignore case), nor can an empty key; those are read one by one."""
    lowered = [f.lower() for f in columns]
    shared = {f: t for f, (_, t) in columns.items() if f and lowered.count(f.lower()) == 1}
    structure = quote(json.dumps({f: column_type(t) for f, t in shared.items()}, ensure_ascii=False))
    struct = f"json_transform({attributes}, {structure})" if shared else "NULL"
    pairs = [
        (column, f"{TYPED}.{ident(field)}" if field in shared else attribute_sql(field, sql_type, attributes))
        for field, (column, sql_type) in columns.items()
    ]
    return struct, pairs


def flat_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(column, type) of `personas` with its attribute columns, for help and error messages."""
    return [(r[0], r[1]) for r in con.execute("DESCRIBE personas").fetchall()]


def comment_attribute_column(con: duckdb.DuckDBPyConnection, column: str, field: str) -> None:
    text = f"attribute {json.dumps(field, ensure_ascii=False)}, typed (its value is also in attributes)"
    con.execute(f"COMMENT ON COLUMN personas.{ident(column)} IS {quote(text)}")
