"""The database file: migrations, the batching writer, and that nothing blocks the event loop."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import duckdb
import pytest

from storage import LATEST, MIGRATIONS, BatchWriter, Database, SchemaTooNew, WriteFailed, migrate
from storage.errors import StorageError
from tests.support.cli import hold_database


def test_new_database_records_every_migration(isolated_db: Path) -> None:
    db = Database(isolated_db)
    with db.write():
        pass
    with db.read() as con:
        rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_opening_an_older_database_upgrades_it_and_keeps_its_data(isolated_db: Path) -> None:
    con = duckdb.connect(str(isolated_db))
    migrate(con, upto=1)
    con.execute(
        "INSERT INTO personas (persona_id, text, text_hash, import_id, imported_at) "
        "VALUES ('p1', 'An old persona', 1, 'imp', now())"
    )
    con.close()
    db = Database(isolated_db)
    with db.read() as con:  # even a reader upgrades an old file
        versions = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
        assert versions == list(range(1, LATEST + 1))
        assert con.execute("SELECT text FROM personas_flat").fetchall() == [("An old persona",)]


def test_an_older_hub_gets_typed_attribute_columns_on_upgrade(isolated_db: Path) -> None:
    con = duckdb.connect(str(isolated_db))
    migrate(con, upto=7)  # attributes were JSON only, the typed columns a view over them
    con.execute(
        "INSERT INTO personas (persona_id, text, attributes, text_hash, import_id, imported_at) VALUES "
        """('p1', 'A potter', '{"age": 50, "city": "Oslo", "tags": ["clay"], "Age": 7, "kin": {"a": 1}}', 1, """
        """'imp', now()), ('p2', 'A welder', '{"age": "n/a", "kin": null}', 2, 'imp', now())"""
    )
    con.execute(  # the view allowed "Age" beside "age"; a table does not
        "INSERT INTO persona_fields VALUES ('age', 'BIGINT', 'age', 'imp'), ('city', 'VARCHAR', 'city', 'imp'), "
        "('tags', 'VARCHAR[]', 'tags', 'imp'), ('Age', 'BIGINT', 'Age', 'imp'), ('kin', 'JSON', 'kin', 'imp')"
    )
    con.close()
    with Database(isolated_db).read() as con:
        assert con.execute("SELECT persona_id, age, city, tags, age_2, kin FROM personas ORDER BY 1").fetchall() == [
            ("p1", 50, "Oslo", ["clay"], 7, '{"a":1}'),
            ("p2", None, None, None, None, None),  # "n/a" is no BIGINT: NULL in the column, kept in attributes
        ]
        assert con.execute("SELECT column_name FROM persona_fields WHERE field = 'Age'").fetchall() == [("Age_2",)]
        assert con.execute("SELECT count(*) FROM personas_flat WHERE age > 40").fetchall() == [(1,)]


def test_pages_crawl_id_is_run_id_after_upgrade_with_its_rows(isolated_db: Path) -> None:
    con = duckdb.connect(str(isolated_db))
    migrate(con, upto=9)
    con.execute(
        "INSERT INTO pages (page_id, crawl_id, url, fetched_at) VALUES ('pg_1', 'run_a', 'http://a.test/', now())"
    )
    con.close()
    with Database(isolated_db).read() as con:
        assert con.execute("SELECT page_id FROM pages WHERE run_id = 'run_a'").fetchall() == [("pg_1",)]
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'pages' AND column_name = 'run_id'"
        ).fetchone()
        assert comment is not None and "swarm crawl" in comment[0]


def test_conversations_from_before_recipes_get_their_outputs_and_next_question(isolated_db: Path) -> None:
    con = duckdb.connect(str(isolated_db))
    migrate(con, upto=12)
    metadata = {"summary": "Two sentences here. And here.", "next_question": "What about naps?"}
    variations = [{"prompt": "p", "response": "r", "tone": "casual", "detail": "brief"}]
    con.execute(
        "INSERT INTO conversations (conversation_id, persona_id, cycle, messages, metadata, variations, created_at) "
        "VALUES ('cv_1', 'p_1', 0, '[]', ?, ?, now()), ('cv_2', 'p_2', 0, '[]', NULL, NULL, now())",
        [json.dumps(metadata), json.dumps(variations)],
    )
    con.close()
    with Database(isolated_db).read() as con:
        rows = con.execute("SELECT conversation_id, outputs, next_question FROM conversations ORDER BY 1").fetchall()
    assert json.loads(rows[0][1]) == {"metadata": metadata, "variations": variations}
    assert rows[0][2] == "What about naps?" and rows[1][1:] == (None, None)


def test_a_folder_or_a_file_that_is_no_database_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not.duckdb").write_text("hello")
    for path in (tmp_path, tmp_path / "not.duckdb"):
        with pytest.raises(StorageError, match=r"cannot open .* as a DuckDB database"), Database(path).read():
            pass


def test_a_database_from_a_newer_version_is_refused_with_advice(isolated_db: Path) -> None:
    db = Database(isolated_db)
    with db.write() as con:
        con.execute("INSERT INTO schema_migrations VALUES (999, 'm999_future', now())")
    with pytest.raises(SchemaTooNew, match="upgrade persona-swarm"), Database(isolated_db).read():
        pass


async def test_writer_batches_rows_from_many_coroutines(isolated_db: Path) -> None:
    db = Database(isolated_db)
    writer = BatchWriter(db, flush_interval=0.05)

    async def agent(i: int) -> None:
        for j in range(50):
            writer.submit(
                "import_rejects",
                {"import_id": f"a{i}", "source": "s", "line": j, "reason": "test", "detail": None, "raw": None},
            )
            await asyncio.sleep(0)

    await asyncio.gather(*(agent(i) for i in range(40)))
    await writer.aflush()
    writer.close()
    with db.read() as con:
        got = con.execute("SELECT count(*), count(DISTINCT import_id) FROM import_rejects").fetchone()
    assert got == (2000, 40)
    assert writer.rows_written == 2000
    assert writer.batches_written < 2000 / 10, "rows must be written in batches, not one by one"


async def test_submit_never_blocks_the_event_loop_even_while_the_file_is_locked(isolated_db: Path) -> None:
    db = Database(isolated_db, lock_timeout=20)
    with db.write():
        pass
    # Another process holds the file for 1.5 s: a writer that blocked the loop would stall the ticker.
    holder = hold_database(isolated_db, 1.5)
    writer = BatchWriter(db, flush_interval=0.01)
    gaps: list[float] = []
    stop = False

    async def ticker() -> None:
        last = time.monotonic()
        while not stop:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    for i in range(300):
        writer.submit("import_rejects", {"import_id": "x", "source": "s", "line": i, "reason": "r"})
        await asyncio.sleep(0.002)
    await writer.aflush()  # completes once the other process lets go
    stop = True
    await tick
    writer.close()
    holder.wait(timeout=10)
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f}s"
    with db.read() as con:
        assert con.execute("SELECT count(*) FROM import_rejects").fetchone() == (300,)


@pytest.mark.slow  # waits out a lock on purpose
def test_a_reader_holding_the_file_past_the_lock_timeout_is_waited_out_not_a_failed_write(
    isolated_db: Path,
) -> None:
    db = Database(isolated_db, lock_timeout=0.3)
    with db.write():
        pass
    dead = isolated_db.with_name(isolated_db.name + ".failed-writes.jsonl")
    holder = hold_database(isolated_db, 1.5)
    with BatchWriter(db, flush_interval=0.01) as writer:
        writer.submit("import_rejects", {"import_id": "x", "source": "s", "line": 1, "reason": "r"})
        writer.flush(timeout=30)
        assert writer.busy_waits >= 1 and writer.failure is None
    holder.wait(timeout=10)
    assert not dead.exists()
    # past its patience, the batch is a failure like any other: kept in the dead-letter file
    holder = hold_database(isolated_db, 2.0)
    writer = BatchWriter(db, flush_interval=0.01, busy_patience=0.0)
    writer.submit("import_rejects", {"import_id": "x", "source": "s", "line": 2, "reason": "r"})
    with pytest.raises(WriteFailed, match="failed-writes"):
        writer.flush(timeout=30)
    writer.close()
    holder.wait(timeout=10)
    assert json.loads(dead.read_text().splitlines()[0])["row"]["line"] == 2


def test_a_batch_that_cannot_be_written_is_kept_and_reported(isolated_db: Path) -> None:
    db = Database(isolated_db)
    writer = BatchWriter(db, flush_interval=0.01)
    writer.submit("personas", {"persona_id": "p", "no_such_column": 1})
    with pytest.raises(WriteFailed, match=r"failed-writes\.jsonl"):
        writer.flush(timeout=10)
    writer.close()
    dead = isolated_db.with_name(isolated_db.name + ".failed-writes.jsonl")
    saved = [json.loads(line) for line in dead.read_text().splitlines()]
    assert saved[0]["table"] == "personas" and saved[0]["row"]["no_such_column"] == 1
    assert "no_such_column" in saved[0]["error"]


def test_rows_with_different_columns_in_one_batch_keep_every_value(isolated_db: Path) -> None:
    db = Database(isolated_db)
    with BatchWriter(db, flush_interval=10) as writer:  # one batch: both rows flushed together on close
        writer.submit("import_rejects", {"import_id": "a", "source": "s", "reason": "r"})
        writer.submit("import_rejects", {"import_id": "b", "source": "s", "reason": "r", "line": 7, "detail": "d"})
    with db.read() as con:
        rows = con.execute("SELECT import_id, line, detail FROM import_rejects ORDER BY 1").fetchall()
    assert rows == [("a", None, None), ("b", 7, "d")]
    assert writer.batches_written == 1


def test_one_minhash_serves_personas_pages_and_exports() -> None:
    from storage import minhash
    from storage.minhash import NearDuplicates

    for shingling in (minhash.PERSONAS, minhash.PAGES, minhash.CONVERSATIONS):
        rows = shingling.num_perm // shingling.bands
        assert 1 - (1 - shingling.threshold**rows) ** shingling.bands >= 0.99, shingling
    text = " ".join(f"word{i}" for i in range(60))
    assert minhash.signature("too short to flag", minhash.PAGES) is None
    index: NearDuplicates[str] = NearDuplicates(minhash.PAGES)
    index.add("first", minhash.signature(text, minhash.PAGES))
    found = index.match(minhash.signature(text + " word60", minhash.PAGES))
    assert found is not None and found[0] == "first" and found[1] >= 0.8
    shuffled = " ".join(reversed(text.split()))  # the same words in another order: no shared 3-gram
    assert index.match(minhash.signature(shuffled, minhash.PAGES)) is None
    # personas compare word sets, as PersonaHub did: the same words in another order are a copy
    persons: NearDuplicates[str] = NearDuplicates(minhash.PERSONAS)
    persons.add("p1", minhash.signature(text, minhash.PERSONAS))
    assert persons.match(minhash.signature(shuffled, minhash.PERSONAS)) is not None
    with pytest.raises(ValueError, match="threshold"):
        minhash.CONVERSATIONS.with_threshold(1.5)
