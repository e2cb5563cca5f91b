"""Numbered schema migrations, applied once each and recorded in `schema_migrations`.

A migration is a function `mNNN_name(con)`; add new ones at the end of `MIGRATIONS` and never edit an
applied one. Opening a database applies whatever it is missing, so an older file is upgraded in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from storage.errors import SchemaTooNew


def m001_personas(con: duckdb.DuckDBPyConnection) -> None:
    # No PRIMARY KEY/UNIQUE constraints: DuckDB's ART indexes make bulk appends of millions of rows
    # several times slower, and the importer (the only writer of personas) dedups by anti-join.
    con.execute(
        """
        CREATE TABLE personas (
            persona_id   VARCHAR NOT NULL,   -- source's own id when given, else derived from text_hash
            text         VARCHAR NOT NULL,
            attributes   JSON,               -- every source field that is not the text
            text_hash    UHUGEINT NOT NULL,  -- md5 of the normalised text as a number (exact dedup key)
            source       VARCHAR,            -- file the persona came from
            source_line  BIGINT,             -- line (JSONL/TXT), row (CSV/Parquet) or index (JSON array)
            source_id    VARCHAR,            -- the source's own id field, if any
            layout       VARCHAR,            -- recognised dataset layout (persona, finepersonas, nemotron, …)
            import_id    VARCHAR NOT NULL,   -- the import batch, see `imports`
            imported_at  TIMESTAMPTZ NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE imports (
            import_id        VARCHAR NOT NULL,
            started_at       TIMESTAMPTZ NOT NULL,
            finished_at      TIMESTAMPTZ,
            status           VARCHAR NOT NULL,   -- finished | strict_refused | failed
            sources          JSON,               -- per file: path, format, layout, counts
            options          JSON,
            imported         BIGINT,
            duplicates       BIGINT,
            near_duplicates  BIGINT,
            rejected         BIGINT
        )
        """
    )
    con.execute(
        """
        CREATE TABLE import_rejects (
            import_id  VARCHAR NOT NULL,
            source     VARCHAR NOT NULL,
            line       BIGINT,
            reason     VARCHAR NOT NULL,   -- bad_json, not_an_object, bad_encoding, empty_text, too_long, …
            detail     VARCHAR,
            raw        VARCHAR             -- the start of the offending line, so nothing is lost
        )
        """
    )


def m002_persona_fields(con: duckdb.DuckDBPyConnection) -> None:
    # The catalogue of attribute keys lets `personas_flat` expose them as typed columns, so a filter can
    # say `age > 40` instead of `CAST(attributes->>'age' AS INT) > 40`.
    con.execute(
        """
        CREATE TABLE persona_fields (
            field      VARCHAR NOT NULL,
            sql_type   VARCHAR NOT NULL,   -- BIGINT, DOUBLE, BOOLEAN, VARCHAR, VARCHAR[] or JSON
            column_name VARCHAR NOT NULL,  -- name in personas_flat (prefixed when it clashes)
            first_import_id VARCHAR
        )
        """
    )
    con.execute("CREATE VIEW personas_flat AS SELECT * FROM personas")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


MIGRATIONS: list[Migration] = [
    Migration(1, "m001_personas", m001_personas),
    Migration(2, "m002_persona_fields", m002_persona_fields),
]
LATEST = MIGRATIONS[-1].version


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return set()
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


def check_not_newer(versions: set[int], path: str) -> None:
    if versions and max(versions) > LATEST:
        raise SchemaTooNew(
            f"{path} has schema version {max(versions)}, but this persona-swarm knows only up to {LATEST}: "
            "upgrade persona-swarm (pip install -U persona-swarm) or use another --db."
        )


def migrate(con: duckdb.DuckDBPyConnection, upto: int | None = None, path: str = "database") -> list[str]:
    """Apply every missing migration (up to `upto`) in order, each in its own transaction.

    Returns the names of the migrations applied now.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = applied_versions(con)
    check_not_newer(done, path)
    applied: list[str] = []
    for migration in MIGRATIONS:
        if migration.version in done or (upto is not None and migration.version > upto):
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            migration.apply(con)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now())", [migration.version, migration.name]
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(migration.name)
    return applied
