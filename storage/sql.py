"""SQL helpers the live code shares: quoting, JSON key paths, typed attribute columns, rows as dicts, ids.

Applied migrations do not call these: they keep frozen copies (storage/migrations.py), so that a change
here cannot change how an old database upgrades.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import duckdb


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A SQL identifier, whatever characters the name holds."""
    return '"' + name.replace('"', '""') + '"'


def json_key_path(key: str) -> str:
    """The JSON path of a top-level key; ensure_ascii=False, as DuckDB matches "país" as written. The
    empty key has no $-path in DuckDB: it gets the JSON pointer "/"."""
    return "$." + json.dumps(key, ensure_ascii=False) if key else "/"


def column_type(sql_type: str) -> str:
    """The column type for a catalogue type: "NULL" (only nulls seen yet) is text until a value shows,
    "NULL[]" (only empty lists yet) a list of text until an element shows."""
    return {"NULL": "VARCHAR", "NULL[]": "VARCHAR[]"}.get(sql_type, sql_type)


def attribute_sql(field: str, sql_type: str, attributes: str = "attributes") -> str:
    """SQL for attribute `field` of the JSON column `attributes` as a value of its column's type.

    A value that does not fit the type (`"unknown"` in a BIGINT column) is NULL there and stays in
    `attributes` as it was."""
    path = quote(json_key_path(field))
    if sql_type == "JSON":  # a JSON null is NULL here, as json_transform makes it at import
        return f"CASE WHEN json_type({attributes}, {path}) <> 'NULL' THEN {attributes}->{path} END"
    if sql_type in ("VARCHAR", "NULL"):
        return f"{attributes}->>{path}"
    return f"TRY_CAST({attributes}->{path} AS {column_type(sql_type)})"


def free_column_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, … : the first name not in `taken` (lower-cased names; DuckDB's
    identifiers ignore case, so "Age" next to "age" needs a name of its own). Adds it to `taken`."""
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name.lower())
    return name


def fetch_dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of an executed statement as dicts by column name."""
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def new_id(prefix: str, *, timed: bool = False) -> str:
    """`<prefix>_<random>`; timed: `<prefix>_<UTC time>_<random>`, which sorts by when it was made (runs,
    imports and crawls, which people read and type)."""
    if timed:
        return f"{prefix}_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"
    return f"{prefix}_{secrets.token_hex(8)}"
