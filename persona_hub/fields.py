"""The attribute catalogue (`persona_fields`) and the `personas_flat` view built from it.

`personas_flat` is `personas` plus one typed column per attribute key, so a filter reads
`age > 40 AND occupation = 'nurse'` and a list column works with `list_contains(topics, 'chess')`.
Types come from DuckDB's `json_group_structure` over the imported rows, widened when files disagree.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from persona_hub.sources import sql_str

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
        inner = _scalar_type(structure[0]) if structure else "VARCHAR"
        return f"{inner}[]" if inner in ("VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN") else "JSON"
    if structure in _INTS:
        return "BIGINT"
    if structure in ("DOUBLE", "BOOLEAN", "VARCHAR"):
        return str(structure)
    if structure == "NULL":
        return "NULL"
    return "VARCHAR"  # mixed scalars: compare as text


def types_from_structure(structure_json: str | None) -> dict[str, str]:
    """Map each top-level key of a `json_group_structure` result to the SQL type of its column."""
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
    if {old, new} == {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    if old.endswith("[]") or new.endswith("[]") or "JSON" in (old, new):
        return "JSON"
    return "VARCHAR"


_TYPE_SAMPLE = 100_000  # rows whose structure sets the column types (a full pass costs as much as the import)


def types_of(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Attribute keys of `table` (all rows) with their types (from the first rows)."""
    row = con.execute(
        "SELECT json_group_structure(CAST(attributes AS JSON)) "
        f"FROM (SELECT attributes FROM {table} LIMIT {_TYPE_SAMPLE})"
    ).fetchone()
    found = types_from_structure(row[0] if row else None)
    total = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    if total and total[0] > _TYPE_SAMPLE:
        for (key,) in con.execute(f"SELECT DISTINCT unnest(json_keys(attributes)) FROM {table}").fetchall():
            found.setdefault(key, "VARCHAR")  # seen only past the sample: compared as text
    return found


def update_catalog(con: duckdb.DuckDBPyConnection, import_id: str, found: dict[str, str]) -> None:
    """Fold newly seen attribute types into `persona_fields` and rebuild `personas_flat`."""
    known = {f: t for f, t in con.execute("SELECT field, sql_type FROM persona_fields").fetchall()}
    for field, sql_type in found.items():
        if field in known:
            wider = widen(known[field], sql_type)
            if wider != known[field]:
                con.execute("UPDATE persona_fields SET sql_type = ? WHERE field = ?", [wider, field])
        else:
            column = f"attr_{field}" if field.lower() in CORE_COLUMNS else field
            con.execute("INSERT INTO persona_fields VALUES (?, ?, ?, ?)", [field, sql_type, column, import_id])
    rebuild_view(con)


def json_path(key: str) -> str:
    # ensure_ascii=False: DuckDB matches the key as written, so "país" must not become "pa\u00eds"
    return "$." + json.dumps(key, ensure_ascii=False)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_sql(field: str, sql_type: str) -> str:
    path = sql_str(json_path(field))
    if sql_type == "JSON":
        return f"attributes->{path}"
    if sql_type in ("VARCHAR", "NULL"):
        return f"attributes->>{path}"
    return f"TRY_CAST(attributes->{path} AS {sql_type})"


def rebuild_view(con: duckdb.DuckDBPyConnection) -> None:
    fields = con.execute("SELECT field, sql_type, column_name FROM persona_fields ORDER BY rowid").fetchall()
    extra = "".join(f", {_column_sql(f, t)} AS {ident(c)}" for f, t, c in fields)
    con.execute(f"CREATE OR REPLACE VIEW personas_flat AS SELECT p.*{extra} FROM personas p")


def flat_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(column, type) of `personas_flat`, for help and error messages."""
    return [(r[0], r[1]) for r in con.execute("DESCRIBE personas_flat").fetchall()]
