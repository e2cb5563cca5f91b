"""Numbered schema migrations, applied once each and recorded in `schema_migrations`.

A migration is a function `mNNN_name(con)` in storage/versions.py (from m013 on, in
storage/versions_recipes.py); add new ones at the end of
`MIGRATIONS` and never edit an applied one. Opening a database applies whatever it is missing, so an
older file is upgraded in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from storage.errors import SchemaTooNew
from storage.versions import (
    m001_personas,
    m002_persona_fields,
    m003_pages,
    m004_llm,
    m005_conversations,
    m006_runs,
    m007_cache_scope,
    m008_typed_attributes,
    m009_hostile_input_reasons,
    m010_pages_run_id,
    m011_invalid_answers,
    m012_partial_conversations,
)
from storage.versions_recipes import m013_recipes, m014_quality, m015_run_metrics, m016_persona_minhash


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


MIGRATIONS: list[Migration] = [
    Migration(1, "m001_personas", m001_personas),
    Migration(2, "m002_persona_fields", m002_persona_fields),
    Migration(3, "m003_pages", m003_pages),
    Migration(4, "m004_llm", m004_llm),
    Migration(5, "m005_conversations", m005_conversations),
    Migration(6, "m006_runs", m006_runs),
    Migration(7, "m007_cache_scope", m007_cache_scope),
    Migration(8, "m008_typed_attributes", m008_typed_attributes),
    Migration(9, "m009_hostile_input_reasons", m009_hostile_input_reasons),
    Migration(10, "m010_pages_run_id", m010_pages_run_id),
    Migration(11, "m011_invalid_answers", m011_invalid_answers),
    Migration(12, "m012_partial_conversations", m012_partial_conversations),
    Migration(13, "m013_recipes", m013_recipes),
    Migration(14, "m014_quality", m014_quality),
    Migration(15, "m015_run_metrics", m015_run_metrics),
    Migration(16, "m016_persona_minhash", m016_persona_minhash),
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
            "upgrade persona-swarm (pip install -U persona-swarm) or use another {--db}."
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
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [migration.version, migration.name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(migration.name)
    return applied
