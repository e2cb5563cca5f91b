"""Each record's raw text, source id and other fields, as SQL: `line, raw_text, source_id, merged`.

Every format can be read from `_raw`, one JSON object per record (`from_json`). A Parquet file can
also be read from its own columns (`from_columns`): its text is already a string and its other fields
already typed, so the JSON a record would be is written once (the attributes) instead of being written
whole, then read three times (text, id, attributes) and written again. The two give the same rows; a
file whose columns do not allow it (a text column that is not text, an id that is neither text nor an
integer, nesting past `nesting.MAX_DEPTH`) goes through `_raw`, which finds every bad record.
"""

from __future__ import annotations

from persona_hub import layouts, nesting, normalise
from storage.sql import attribute_sql, column_type, ident, json_key_path, quote

_ID_TYPES = {"VARCHAR", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"}


def from_json(source: str, layout: layouts.Layout) -> str:
    """The records of `source` (`line, rec` with a JSON object per row) whose text field is a string.
    Text and id come from one json_extract of both paths: one parse of the record, not two."""
    paths = [quote(json_key_path(layout.text_field))]
    if layout.id_field:
        paths.append(quote(json_key_path(layout.id_field)))
    source_id = "got[2]->>'$'" if layout.id_field else "NULL::VARCHAR"
    drop = [layout.text_field] + ([layout.id_field] if layout.id_field else [])
    return f"""
        SELECT line, {normalise.text_sql("value", "string")} AS raw_text, source_id,
               {normalise.attributes_sql("rec", drop)} AS merged
        FROM (
            SELECT line, rec, value, value->>'$' AS string, source_id FROM (
                SELECT line, rec, got[1] AS value, {source_id} AS source_id FROM (
                    SELECT line, rec, try(json_extract(rec, [{", ".join(paths)}])) AS got
                    FROM {source} WHERE rec IS NOT NULL AND NOT {nesting.too_deep_sql("rec")}
                )
            ) WHERE starts_with(value, '"')  -- a JSON string (an object's field: rec is an object)
        )
    """


def usable(columns: dict[str, str] | None, layout: layouts.Layout) -> bool:
    """Whether `from_columns` can read a file of these columns (name: DuckDB type) for `layout`."""
    if not columns or columns.get(layout.text_field) != "VARCHAR":
        return False
    if layout.id_field and columns.get(layout.id_field) not in _ID_TYPES:
        return False
    return all(_depth_bound(t) <= nesting.MAX_DEPTH for t in columns.values())


def _depth_bound(sql_type: str) -> int:
    """At least how deep a value of this type can nest (its brackets, opened and left open)."""
    level = deepest = 0
    for char in sql_type:
        level += char == "("
        level -= char == ")"
        deepest = max(deepest, level)
    return deepest + sql_type.count("[]") + 1


def from_columns(table: str, columns: dict[str, str], layout: layouts.Layout, rows: int | None = None) -> str:
    """The records of `table` (a file's columns and `file_row_number`) whose text is not NULL; its first
    `rows` only, if given. `usable` must hold."""
    text = ident(layout.text_field)
    if layout.id_field is None:
        source_id = "NULL::VARCHAR"
    elif columns[layout.id_field] == "VARCHAR":
        source_id = ident(layout.id_field)
    else:
        source_id = f"CAST({ident(layout.id_field)} AS VARCHAR)"
    others = [c for c in columns if c not in (layout.text_field, layout.id_field)]
    struct = ", ".join(f"{quote(c)}: {ident(c)}" for c in others)
    merged = f"CAST(to_json({{{struct}}}) AS VARCHAR)" if others else "'{}'"
    first = f" AND file_row_number < {int(rows)}" if rows is not None else ""
    carried = "".join(f", {ident(c)} AS {_carried(i)}" for i, c in enumerate(columns) if c in others)
    return f"""
        SELECT file_row_number + 1 AS line, {normalise.clean_text_sql(text)} AS raw_text,
               {source_id} AS source_id, {merged} AS merged{carried}
        FROM {table} WHERE {text} IS NOT NULL{first}
    """


def _carried(index: int) -> str:
    return f"_file_column_{index}"  # a file column as it is, beside the record's attributes


_SAME = {  # typed column type: file column types whose values json_transform of their JSON gives back
    "BIGINT": {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT"},
    "DOUBLE": {"DOUBLE"},
    "BOOLEAN": {"BOOLEAN"},
    "VARCHAR[]": {"VARCHAR[]"},
}


def typed_from_columns(
    columns: dict[str, str], layout: layouts.Layout, typed: dict[str, tuple[str, str]]
) -> dict[str, str]:
    """SQL for the typed columns (`typed`: field -> (column, type)) that can be read from the file's own
    column rather than from the attributes (one JSON parse a record fewer), by typed column name. A
    text column is read as it is unless cleaning changes it: "None", "null", "NaN" and "" become NULL,
    and a value with a "[" may be a list written as a string, which the attributes hold as a list."""
    out: dict[str, str] = {}
    for index, (name, file_type) in enumerate(columns.items()):
        if name in (layout.text_field, layout.id_field) or name not in typed:
            continue
        column, sql_type = typed[name]
        value = _carried(index)
        if file_type in _SAME.get(sql_type, ()):
            out[column] = f"CAST({value} AS {column_type(sql_type)})"
        elif sql_type == file_type == "VARCHAR":
            out[column] = (
                f"CASE WHEN contains({value}, '[') THEN {attribute_sql(name, sql_type)} "
                f"WHEN {value} IN ('None', 'null', 'NaN', '') THEN NULL ELSE {value} END"
            )
    return out


def attribute_keys(columns: dict[str, str] | None, layout: layouts.Layout) -> set[str] | None:
    """Every key a record's attributes can have, when the file fixes them (its columns); else None."""
    if columns is None:
        return None
    return set(columns) - {layout.text_field, layout.id_field}
