"""`swarm query`: formats, read-only refusals, and reading while another process writes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from storage import Database, QueryError, run_query
from tests.support.cli import Cli, swarm_subprocess


@pytest.fixture
def seeded(cli: Cli, formats: Path) -> None:
    code, _, err = cli(
        "personas", "import", str(formats / "finepersonas.jsonl"), str(formats / "nemotron_personas.csv")
    )
    assert code == 0, err


def test_formats_csv_json_jsonl_and_table(cli: Cli, seeded: None) -> None:
    sql = (
        "SELECT persona_id, age, attributes, hobbies_and_interests_list AS hobbies "
        "FROM personas_flat ORDER BY persona_id"
    )
    code, out, _ = cli("query", sql, "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["persona_id", "age", "attributes", "hobbies"]
    assert len(rows) == 5
    code, out, _ = cli("query", sql, "--format", "json")
    records = json.loads(out)
    assert isinstance(records, list) and len(records) == 4
    dolores = next(r for r in records if r["persona_id"].endswith("0001") and r["age"] == 52)
    assert isinstance(dolores["attributes"], dict), "JSON columns come out as JSON, not quoted strings"
    assert dolores["attributes"]["city"] == "San Antonio"
    assert dolores["hobbies"] == ["gardening", "bowling", "watercolour painting"]
    code, out, _ = cli("query", sql, "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == records
    code, out, _ = cli("query", "SELECT count(*) AS n FROM personas")
    assert code == 0 and "4" in out and "1 row" in out


def test_empty_result_is_valid_json(cli: Cli, seeded: None) -> None:
    code, out, _ = cli("query", "SELECT * FROM personas WHERE false", "--format", "json")
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO personas (persona_id, text, text_hash, import_id, imported_at) VALUES ('x','y',1,'i',now())",
        "UPDATE personas SET text = 'changed'",
        "DELETE FROM personas",
        "DROP TABLE personas",
        "CREATE TABLE t AS SELECT * FROM personas",
        "CREATE TEMP TABLE t AS SELECT 1",
        "ALTER TABLE personas ADD COLUMN x INT",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "COPY personas TO '{tmp}/out.csv'",
        "COPY (SELECT 1) TO '{tmp}/out.csv'",
        "EXPORT DATABASE '{tmp}/export'",
        "PRAGMA enable_profiling",
        "SET threads = 1",
        "CHECKPOINT",
        "INSTALL httpfs",
        "SELECT 1; DROP TABLE personas",
        # EXPLAIN ANALYZE runs its statement: only a plain EXPLAIN of a read may pass
        "EXPLAIN ANALYZE COPY (SELECT * FROM personas) TO '{tmp}/out.csv'",
        "EXPLAIN ANALYZE INSTALL httpfs",
        "EXPLAIN ANALYZE SET threads = 1",
        "EXPLAIN ANALYZE CALL pragma_version()",
        "EXPLAIN ANALYZE CHECKPOINT",
        "EXPLAIN (ANALYZE) COPY personas TO '{tmp}/out.csv'",
        "EXPLAIN (FORMAT JSON, ANALYZE) COPY personas TO '{tmp}/out.csv'",
        "EXPLAIN /* a comment */ analyze COPY personas TO '{tmp}/out.csv'",
        "EXPLAIN COPY personas TO '{tmp}/out.csv'",
        # a SELECT whose table function writes files, or runs SQL given as text
        "SELECT * FROM enable_logging(storage = 'file', storage_path = '{tmp}/logs')",
        "SELECT * FROM query('SELECT * FROM enable_logging(storage = ''file'', storage_path = ''{tmp}/logs'')')",
        "WITH x AS (SELECT * FROM enable_profiling(save_location = '{tmp}/profile.json')) SELECT * FROM x",
    ],
)
def test_statements_that_write_are_refused_and_change_nothing(cli: Cli, seeded: None, tmp_path: Path, sql: str) -> None:
    before = cli("query", "SELECT persona_id, text FROM personas ORDER BY 1", "-f", "json")[1]
    tables_before = cli("query", "SHOW TABLES", "-f", "json")[1]
    files_before = sorted(p.name for p in tmp_path.iterdir())
    code, _out, err = cli("query", sql.format(tmp=tmp_path))
    assert code != 0
    assert "read-only" in err or "one statement" in err
    assert "nothing was changed" in err or "one statement" in err
    assert cli("query", "SELECT persona_id, text FROM personas ORDER BY 1", "-f", "json")[1] == before
    assert cli("query", "SHOW TABLES", "-f", "json")[1] == tables_before
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before


def test_reads_that_look_like_other_statements_are_allowed(cli: Cli, seeded: None) -> None:
    for sql in (
        "DESCRIBE personas",
        "SHOW TABLES",
        "PRAGMA table_info('personas')",
        "EXPLAIN SELECT * FROM personas",
        "SUMMARIZE personas",
        "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
        "EXPLAIN (FORMAT JSON) SELECT * FROM personas",
        "SELECT * FROM range(3)",
    ):
        code, _, err = cli("query", sql)
        assert code == 0, (sql, err)


def test_missing_database_and_bad_sql_give_one_clear_line(cli: Cli, tmp_path: Path, seeded: None) -> None:
    code, _, err = cli("--db", str(tmp_path / "nothing.duckdb"), "query", "SELECT 1")
    message, hint = err.strip().splitlines()
    assert code == 1 and message.startswith("error: no database at") and hint.startswith("hint: import personas first")
    assert not (tmp_path / "nothing.duckdb").exists()
    code, _, err = cli("query", "SELECT nope FROM personas")
    assert code == 1 and "nope" in err and "Traceback" not in err


WRITER = textwrap.dedent(
    """
    import sys, time
    from storage import BatchWriter, Database
    db = Database(sys.argv[1])
    with BatchWriter(db, flush_interval=0.05) as writer:
        for i in range(int(sys.argv[2])):
            writer.submit("import_rejects", {"import_id": "live", "source": "w", "line": i, "reason": "tick"})
            if i % 20 == 19:
                time.sleep(0.05)
    print("done", flush=True)
    """
)


@pytest.mark.slow
def test_query_works_while_another_process_writes(isolated_db: Path, cli: Cli, seeded: None) -> None:
    total = 2000
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(isolated_db), str(total)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    counts: list[int] = []
    try:
        while writer.poll() is None and len(counts) < 40:
            result = swarm_subprocess(
                "query", "SELECT count(*) AS n FROM import_rejects WHERE import_id = 'live'", "-f", "jsonl"
            )
            assert result.returncode == 0, result.stderr
            counts.append(json.loads(result.stdout)["n"])
            time.sleep(0.05)
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
    final = swarm_subprocess(
        "query", "SELECT count(*) AS n FROM import_rejects WHERE import_id = 'live'", "-f", "jsonl"
    )
    assert json.loads(final.stdout)["n"] == total
    assert counts == sorted(counts), "a reader must never see rows disappear"
    assert any(0 < c < total for c in counts), f"the reader should watch the table grow, saw {counts}"


def test_query_connections_install_and_load_no_extension(cli: Cli, seeded: None) -> None:
    code, out, err = cli(
        "query",
        "SELECT current_setting('autoinstall_known_extensions') AS install, "
        "current_setting('autoload_known_extensions') AS load",
        "-f",
        "jsonl",
    )
    assert code == 0, err
    assert json.loads(out) == {"install": False, "load": False}


def test_sealed_queries_read_no_file_and_cannot_be_unsealed(isolated_db: Path, seeded: None, tmp_path: Path) -> None:
    data = tmp_path / "mine.csv"
    data.write_text("a,b\n1,2\n")
    sql = f"SELECT * FROM read_csv('{data}')"
    with run_query(Database(isolated_db), sql) as result:  # the CLI: a user may read their own files
        assert [row for batch in result.batches() for row in batch] == [(1, 2)]
    with (
        pytest.raises(QueryError, match="may not read files") as refused,
        run_query(Database(isolated_db), sql, sealed=True),
    ):
        pass
    assert str(data) in str(refused.value)
    settings = (
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), "
        "current_setting('autoload_known_extensions')"
    )
    with run_query(Database(isolated_db), settings, sealed=True) as result:
        assert [row for batch in result.batches() for row in batch] == [(False, True, False)]
    with run_query(Database(isolated_db), "SELECT count(*) FROM personas", sealed=True) as result:
        assert [row for batch in result.batches() for row in batch] == [(4,)]
