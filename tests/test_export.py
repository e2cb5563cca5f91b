"""`swarm export`: every format loads in Hugging Face `datasets` as it is; filters and dedup do what they say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import Database
from tests.support.cli import RUN, Cli
from tests.support.llm_server import LLMServer


@pytest.fixture
def finished_run(cli: Cli, swarm_env: dict[str, str], llm_server: LLMServer) -> str:
    code, out, err = cli(*RUN, "-n", "3", "--turns", "2", "--variations", "2", "--quiet")
    assert code == 0, err
    return out.strip().splitlines()[-1]


def load(kind: str, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))


def test_openai_jsonl_is_chat_messages_and_loads_in_datasets(
    cli: Cli, finished_run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "train.jsonl"
    code, stdout, err = cli("export", "--run", finished_run, "--format", "openai", "-o", str(out))
    assert code == 0, err and "3 examples" in stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 and set(records[0]) == {"messages"}
    assert [m["role"] for m in records[0]["messages"]] == ["user", "assistant", "user", "assistant"]
    loaded = load("json", out, tmp_path, monkeypatch)
    assert loaded.num_rows == 3 and loaded[0]["messages"][1]["role"] == "assistant"


def test_sharegpt_with_a_persona_system_message_and_variations(
    cli: Cli, finished_run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "sharegpt.jsonl"
    code, stdout, err = cli("export", "--format", "sharegpt", "--system", "persona", "--variations", "-o", str(out))
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 + 3 * 2 and "6 from variations" in stdout
    first = records[0]["conversations"]
    assert [t["from"] for t in first] == ["system", "human", "gpt", "human", "gpt"]
    assert first[0]["value"].startswith("You are talking with: ")
    assert [t["from"] for t in records[1]["conversations"]] == ["human", "gpt"]
    assert load("json", out, tmp_path, monkeypatch).num_rows == 9


def test_parquet_has_typed_metadata_and_persona_columns(
    cli: Cli, finished_run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "conversations.parquet"
    code, _, err = cli("export", "--run", finished_run, "--format", "parquet", "-o", str(out))
    assert code == 0, err
    table = pq.read_table(out)
    assert table.num_rows == 3
    assert {"persona", "persona_attributes", "messages", "tags", "summary", "sentiment", "sources"} <= set(
        table.column_names
    )
    tags = table.schema.field("tags").type
    assert pa.types.is_list(tags) and pa.types.is_string(tags.value_type)
    row = table.slice(0, 1).to_pylist()[0]
    assert row["persona"] and len(row["tags"]) >= 3 and row["messages"][0]["role"] == "user"
    assert len(row["variations"]) == 2 and set(row["variations"][0]) == {"prompt", "response", "tone", "detail"}
    loaded = load("parquet", out, tmp_path, monkeypatch)
    assert loaded.num_rows == 3 and loaded[0]["messages"][0]["role"] == "user" and loaded[0]["tags"] == row["tags"]
    # the scores ride along: every check of the conversation, and whether the blocking ones passed
    assert row["quality_passed"] is True and {q["check"] for q in row["quality"]} >= {"citations", "support", "echo"}
    assert loaded[0]["quality"][0]["check"] == row["quality"][0]["check"]


def test_export_keeps_only_conversations_that_pass_the_blocking_checks_unless_told(
    cli: Cli, finished_run: str, llm_server: LLMServer, isolated_db: Path, tmp_path: Path
) -> None:
    llm_server.grounded = False  # a second run whose assistant echoes the user: it fails echo and support
    code, out, err = cli(*RUN, "-n", "2", "--turns", "2", "--quiet")
    assert code == 0, err
    echoing = out.strip().splitlines()[-1]
    with Database(isolated_db).write() as con:  # a conversation from before the checks: never checked
        con.execute(
            "DELETE FROM quality WHERE conversation_id = (SELECT min(conversation_id) FROM conversations "
            "WHERE run_id = ?)",
            [finished_run],
        )
    path = tmp_path / "out.jsonl"
    code, said, err = cli("export", "--format", "openai", "-o", str(path))
    assert code == 0, err
    said = " ".join(said.split())
    assert "2 examples" in said and "2 that failed a blocking quality check left out (--all keeps them)" in said
    assert "1 not checked left out (swarm eval checks them; --all keeps them)" in said
    assert len(path.read_text().splitlines()) == 2
    code, said, _ = cli("export", "--format", "openai", "--all", "-o", str(path))
    assert code == 0 and len(path.read_text().splitlines()) == 5 and "left out" not in said
    # finer cuts: a minimum per check, or SQL over the scores
    code, said, err = cli("export", "--run", echoing, "--all", "--min-score", "echo=1", "--format", "openai", "-o",
                          str(path))  # fmt: skip
    assert code == 0 and "0 examples" in said, err
    where = "scores['support'] >= 0.5 AND quality_passed"
    code, said, err = cli("export", "--all", "--where", where, "--format", "openai", "-o", str(path))
    assert code == 0 and "2 examples" in said, err
    code, _, err = cli("export", "--min-score", "helpfulness=0.5", "--format", "openai", "-o", str(path))
    assert code != 0 and "no conversation has a score of that name; they have: citations, degenerate" in err
    code, _, err = cli("export", "--min-score", "support=2", "--format", "openai", "-o", str(path))
    assert code != 0 and "give CHECK=X with X from 0 to 1" in err


def test_filters_on_metadata_dedup_and_errors(cli: Cli, finished_run: str, tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    code, stdout, _ = cli("export", "--format", "openai", "-o", str(out), "--where", "sentiment = 'negative'")
    assert code == 0 and out.read_text() == "" and "0 conversations matched" in stdout
    code, stdout, _ = cli(
        "export", "--format", "openai", "-o", str(out), "--where", "turns = 2 AND list_contains(tags, tags[1])"
    )
    assert code == 0 and len(out.read_text().splitlines()) == 3
    # the same run again (the same sample of personas, the same answers): three near-identical conversations
    code, _, err = cli(*RUN, "-n", "3", "--turns", "2", "--quiet")
    assert code == 0, err
    code, stdout, _ = cli("export", "--format", "openai", "-o", str(out), "--dedup")
    assert code == 0 and "3 near-duplicates dropped" in stdout and len(out.read_text().splitlines()) == 3
    code, _, err = cli("export", "--format", "openai", "-o", str(out), "--where", "colour = 'red'")
    assert code == 1 and "bad --where" in err and "sentiment" in err
    code, _, err = cli("export", "--format", "csv", "-o", str(out))
    assert code == 1 and "openai, sharegpt, parquet" in err
    code, _, err = cli("export", "--run", "run_missing", "--format", "openai", "-o", str(out))
    assert code == 1 and "no run run_missing" in err
    code, _, err = cli("export", "--format", "openai", "-o", str(out), "--dedup", "--threshold", "90")
    assert code == 1 and "--threshold" in err
    # a filter may end in a comment, as SQL typed by hand does
    code, _, err = cli("export", "--format", "openai", "-o", str(out), "--where", "turns = 2 -- two-turn ones")
    assert code == 0 and len(out.read_text().splitlines()) == 6, err


def test_a_where_is_one_condition_and_cannot_escape_the_run_filter(cli: Cli, finished_run: str, tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    for where in (
        "false) OR (true",  # `run_id = ? AND (false) OR (true)` would export every run
        "true) ORDER BY 1 LIMIT 1 --",
        "1=1) UNION ALL SELECT * FROM conversations --",
        "turns = 2; SELECT 1",
    ):
        code, stdout, err = cli("export", "--run", finished_run, "--format", "openai", "-o", str(out), "--where", where)
        assert code == 1, (where, stdout)
        assert "bad --where" in err and "not one SQL condition" in err and "sentiment" in err, err
        assert not out.exists()
