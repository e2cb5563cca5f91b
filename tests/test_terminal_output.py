"""What swarm prints to a terminal shows persona, page and file text as it is: control sequences as
escapes and rich markup as plain brackets; csv, json and jsonl stay the data, byte for byte."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.support.cli import Cli

# what the import keeps of a persona's text (it takes out C0 controls such as ESC, not these): an 8-bit
# screen clear (CSI 2J), markup, an emoji code, a carriage return that overwrites the line, and a
# right-to-left override; page text and attributes may hold anything, ESC included
NURSE = "A nurse \x9b2J who [bold]likes[/bold] chess [/] :thumbs_up:\rOVERWRITTEN"
WELDER = "A welder who turns text \u202eright to left"
TITLE = "\x1b]0;pwned\x07 and \x1b[2J"  # a window-title change and a screen clear
RAW = ("\x1b", "\x07", "\x9b", "\r", "\u202e")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    path = tmp_path / "[ab]x*?.jsonl"
    records = [
        {"persona": NURSE, "occupation": "[red]nurse[/red]\x1b[5m"},
        {"persona": WELDER, "occupation": "welder"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def imported(cli: Cli, hostile: Path) -> None:
    code, _, err = cli("personas", "import", str(hostile))
    assert code == 0, err


def _shows_text_literally(out: str) -> None:
    assert not any(c in out for c in RAW), repr(out)
    assert "A nurse \\x9b2J who [bold]likes[/bold] chess [/] :thumbs_up:\\x0dOVERWRITTEN" in out
    assert "A welder who turns text \\u202eright to left" in out


def test_query_table_shows_control_characters_and_markup_as_text(cli: Cli, imported: None) -> None:
    code, out, err = cli("query", 'SELECT text AS "[red]the text[/red]" FROM personas ORDER BY text')
    assert code == 0, err
    _shows_text_literally(out)
    assert "[red]the text[/red]" in out and "2 rows" in out
    title = "chr(27) || ']0;pwned' || chr(7) || ' and ' || chr(27) || '[2J'"
    code, out, err = cli("query", f"SELECT {title} AS page_text, occupation FROM personas_flat ORDER BY 2")
    assert code == 0, err
    assert "\\x1b]0;pwned\\x07 and \\x1b[2J" in out and "[red]nurse[/red]\\x1b[5m" in out
    assert "\x1b" not in out and "\x07" not in out


def test_query_csv_json_and_jsonl_keep_the_data_byte_for_byte(cli: Cli, imported: None) -> None:
    sql = "SELECT text FROM personas ORDER BY text"
    code, out, _ = cli("query", sql, "-f", "csv")
    assert code == 0 and list(csv.reader(io.StringIO(out, newline=""))) == [["text"], [NURSE], [WELDER]]
    code, out, _ = cli("query", sql, "-f", "json")
    assert code == 0 and json.loads(out) == [{"text": NURSE}, {"text": WELDER}]
    code, out, _ = cli("query", sql, "-f", "jsonl")
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == [{"text": NURSE}, {"text": WELDER}]
    title = "chr(27) || ']0;pwned' || chr(7) || ' and ' || chr(27) || '[2J'"
    code, out, _ = cli("query", f"SELECT {title} AS t", "-f", "csv")
    assert code == 0 and out == f"t\n{TITLE}\n"
    # sample --format jsonl is data too: `:thumbs_up:` stays text, not an emoji
    code, out, _ = cli("personas", "sample", "--format", "jsonl")
    assert code == 0 and sorted(json.loads(line)["text"] for line in out.splitlines()) == [NURSE, WELDER]


def test_personas_sample_and_stats_tables_show_text_literally(cli: Cli, imported: None) -> None:
    code, out, err = cli("personas", "sample", "-n", "2")
    assert code == 0, err
    _shows_text_literally(out)
    assert "[ab]x*?.jsonl:1" in out
    code, out, err = cli("personas", "sample", "-n", "2", "--stratify-by", "occupation")
    assert code == 0, err
    assert "[red]nurse[/red]\\x1b[5m" in out and "\x1b" not in out
    code, out, err = cli("personas", "stats")
    assert code == 0, err
    assert "[ab]x*?.jsonl" in out and "[red]nurse[/red]\\x1b[5m (1)" in out and "\x1b" not in out


def test_import_prints_file_names_as_they_are(cli: Cli, hostile: Path) -> None:
    code, out, err = cli("personas", "import", str(hostile))
    assert code == 0, err
    assert f"{hostile} (jsonl, persona): 2 imported" in out


def test_errors_quote_sql_and_filters_as_they_are(cli: Cli, imported: None) -> None:
    code, _, err = cli("query", 'SELECT "[/]" FROM personas')
    assert code == 1 and '"[/]"' in err and "Traceback" not in err
    code, _, err = cli("personas", "count", "--where", "[bold]x[/bold] = '\x1b[2J'")
    assert code == 1 and "[bold]x[/bold]" in err and "\x1b" not in err


def test_the_demo_shows_a_conversation_as_text(
    imported: None, isolated_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datetime as dt

    from agents.cli.demo import _show
    from storage import BatchWriter, Database

    db = Database(isolated_db)
    with db.read() as con:
        persona_id = con.execute("SELECT persona_id FROM personas LIMIT 1").fetchone()[0]
    row = {
        "conversation_id": "cv_1", "run_id": "run_t", "persona_id": persona_id, "cycle": 0,
        "messages": [{"role": "user", "content": f"tell me {TITLE} [/]"}, {"role": "assistant", "content": "[red]x"}],
        "sources": [{"n": 1, "page_id": "pg_1", "url": "http://127.0.0.1/x", "title": TITLE}],
        "metadata": {"tags": ["[bold]t"], "sentiment": "[/]", "summary": TITLE},
        "created_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip
    with BatchWriter(db) as writer:
        writer.submit("conversations", row)
    _show(db, {"run_id": "run_t"})
    out = capsys.readouterr().out
    assert not any(raw in out for raw in RAW)
    assert "\\x1b]0;pwned" in out and "[red]x" in out and "[bold]t" in out and "[/]" in out
