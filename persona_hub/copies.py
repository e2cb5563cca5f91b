"""Copies and taken source ids, changed after an import commits.

Unless `--dedup none`, the import appends every persona, then finds those whose text an older persona
or an earlier line has (`_copies`; `near_dedup` adds the near copies), and those whose source id
another persona has (`_renamed`: they take the id of their text), and removes or renames them in a
transaction of its own.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

from storage.sql import quote

HASH_ID = "'p_' || lpad(to_hex(CAST(text_hash >> 64 AS UBIGINT)), 16, '0')"  # a persona's id without a source id

# Copies are removed after the import commits, in a transaction of their own: DuckDB writes a large
# insert straight to the file as it goes, unless rows it inserted are deleted before the commit, which
# makes the commit write them all again (5 s and 1.3 GB more for 5 million personas). Until then
# the import's status says so; an import stopped in between is finished by the next one.
SETTLING = "removing_copies"


def find(con: duckdb.DuckDBPyConnection, import_id: str, paths: list[str]) -> tuple[dict[str, int], int]:
    """`_copies` (source, source_line): this import's personas whose text an older persona or an earlier
    line has (files in the order given). `_renamed` (source, source_line, persona_id): those of the rest
    whose own id another persona has, older or on an earlier line, with the id of their text instead.
    Returns the copies per file and how many personas are renamed."""
    con.execute("CREATE OR REPLACE TEMP TABLE _copies (source VARCHAR, source_line BIGINT)")
    con.register("_files", pa.table({"source": paths, "position": list(range(len(paths)))}))
    mine = f"(SELECT * FROM personas WHERE import_id = {quote(import_id)})"
    older = f"(SELECT * FROM personas WHERE import_id <> {quote(import_id)})"
    # into an empty hub (a first import of 20 million), nothing is older: the joins with it are skipped
    hub = bool(con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {older} LIMIT 1)").fetchall()[0][0])
    ordered = "JOIN (SELECT source, min(position) AS position FROM _files GROUP BY source) USING (source)"
    # Against the hub, its side is the big one (20M, adding 100,000): its hashes and ids are probed
    # against this import's, rather than gathered into a join table (1.3-1.8 s -> 0.8-1.0 s).
    held = f"SELECT text_hash FROM {older} WHERE text_hash IN (SELECT text_hash FROM {mine})"
    of_older = f"SELECT source, source_line FROM {mine} WHERE text_hash IN ({held})"
    con.execute(
        f"""
        INSERT INTO _copies
        SELECT source, source_line FROM (
            SELECT source, source_line, row_number() OVER (PARTITION BY text_hash ORDER BY position, source_line) AS n
            FROM (SELECT source, source_line, text_hash FROM {mine} WHERE text_hash IN (
                SELECT text_hash FROM {mine} GROUP BY text_hash HAVING count(*) > 1)) {ordered}
        ) WHERE n > 1
        {f"UNION {of_older}" if hub else ""}
        """
    )
    # A persona took its source's id at the insert when it had one. Only ids seen twice in the import
    # (found by grouping hashes of them, numbers rather than strings) or held by an older
    # persona can be taken, and only by a persona that is not a copy. Two statements: as the two
    # sides of one UNION, DuckDB kept every persona with an id of the import in memory for both.
    with_id = f"(SELECT source, source_line, source_id, text_hash FROM {mine} WHERE source_id IS NOT NULL)"
    twice = f"(SELECT hash(source_id) FROM {with_id} GROUP BY 1 HAVING count(*) > 1)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _renamed AS
        SELECT source, source_line, {HASH_ID} AS persona_id FROM (
            SELECT source, source_line, text_hash,
                   row_number() OVER (PARTITION BY source_id ORDER BY position, source_line) AS n
            FROM (SELECT * FROM {with_id} WHERE hash(source_id) IN {twice})
                 ANTI JOIN _copies USING (source, source_line) {ordered}
        ) WHERE n > 1
        """
    )
    if hub:
        con.execute(
            f"""
            INSERT INTO _renamed
            SELECT source, source_line, {HASH_ID} FROM (
                SELECT * FROM {with_id} WHERE source_id IN (
                    SELECT persona_id FROM {older} WHERE persona_id IN (SELECT source_id FROM {with_id}))
            ) ANTI JOIN _copies USING (source, source_line) ANTI JOIN _renamed USING (source, source_line)
            """
        )
    con.unregister("_files")
    by_source = {
        str(source): int(n) for source, n in con.execute("SELECT source, count(*) FROM _copies GROUP BY ALL").fetchall()
    }
    return by_source, int(con.execute("SELECT count(*) FROM _renamed").fetchall()[0][0])


def settle(con: duckdb.DuckDBPyConnection, import_id: str) -> None:
    """Remove `_copies` and rename `_renamed` of import `import_id`, and mark it finished."""
    con.execute("BEGIN TRANSACTION")
    con.execute(
        f"""DELETE FROM personas USING _copies c WHERE personas.import_id = {quote(import_id)}
            AND personas.source = c.source AND personas.source_line = c.source_line"""
    )
    con.execute(
        f"""UPDATE personas SET persona_id = r.persona_id FROM _renamed r WHERE personas.import_id = {quote(import_id)}
            AND personas.source = r.source AND personas.source_line = r.source_line"""
    )
    con.execute("UPDATE imports SET status = 'finished' WHERE import_id = ?", [import_id])
    con.execute("COMMIT")
    con.execute("DROP TABLE _copies; DROP TABLE _renamed")


def settle_unfinished(con: duckdb.DuckDBPyConnection) -> None:
    """Finish an import whose copies were not removed (its process stopped after it committed)."""
    for import_id, sources_json in con.execute(
        f"SELECT import_id, sources FROM imports WHERE status = {quote(SETTLING)}"
    ).fetchall():
        find(con, import_id, [s["path"] for s in json.loads(sources_json)])
        settle(con, import_id)
