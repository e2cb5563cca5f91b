"""`swarm personas import`: the public datasets' layouts, every format, provenance, dedup and bad input."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from persona_hub import fields
from tests.support.cli import Cli


def q(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def attrs(db: Path, where: str) -> dict[str, Any]:
    return json.loads(q(db, f"SELECT attributes FROM personas WHERE {where}")[0][0])


def test_public_layouts_are_recognised_without_flags(cli: Cli, formats: Path, isolated_db: Path) -> None:
    files = [
        "personahub_persona.jsonl",
        "personahub_synthesized.jsonl",
        "personahub_elite.jsonl",
        "finepersonas.jsonl",
        "nemotron_personas.csv",
        "tinytroupe.agent.json",
    ]
    code, out, err = cli("personas", "import", *(str(formats / f) for f in files))
    assert code == 0, err
    assert "13 imported, 0 duplicates, 0 rejected" in out
    layouts = dict(q(isolated_db, "SELECT layout, count(*) FROM personas GROUP BY 1"))
    assert layouts == {
        "persona": 3,
        "personahub_synthesized": 3,
        "personahub_elite": 2,
        "finepersonas": 2,
        "nemotron": 2,
        "tinytroupe": 1,
    }
    # PersonaHub synthesized: text from "input persona", the rest kept under their own keys
    syn = attrs(isolated_db, "text LIKE 'A freelance translator%'")
    assert syn == {
        "synthesized text": "How should I translate 'foro de eleição' so that an English-speaking "
        "judge understands it?",
        "description": "instruction",
    }
    # Elite: the literal "None" means no value
    elite = attrs(isolated_db, "text LIKE 'A structural biologist%'")
    assert elite["general domain (top 0.1 percent)"] is None
    assert elite["specific domain (top 1 percent)"] == "Structural Biology"
    # FinePersonas: its id is the persona_id; labels become a list even when JSON-encoded as a string
    fine = dict(q(isolated_db, "SELECT persona_id, attributes->'labels' FROM personas WHERE layout = 'finepersonas'"))
    assert {k: json.loads(v) for k, v in fine.items()} == {
        "<urn:uuid:4f1c2a3e-0000-4000-8000-000000000001>": ["Education", "History"],
        "<urn:uuid:4f1c2a3e-0000-4000-8000-000000000002>": ["Urban Planning", "Economics"],
    }
    # Nemotron: uuid is the id, Python-repr lists are lists, numbers are numbers, empty is null
    nemo = attrs(isolated_db, "persona_id = '0a1b2c3d-0000-4000-8000-000000000001'")
    assert nemo["skills_and_expertise_list"] == ["inventory control", "sterile compounding", "staff training"]
    assert nemo["age"] == 52 and nemo["bachelors_field"] is None and nemo["state"] == "TX"
    # TinyTroupe: the text is written from the nested persona; its fields stay filterable
    (text,) = q(isolated_db, "SELECT text FROM personas WHERE layout = 'tinytroupe'")[0]
    assert text.startswith("Ines Carvalho, 41, Portuguese") and "Fisheries scientist" in text
    assert "ocean acidification" in text
    assert q(isolated_db, "SELECT occupation, age FROM personas_flat WHERE layout = 'tinytroupe'") == [
        ("Fisheries scientist", 41)
    ]


def test_provenance_and_the_import_record(cli: Cli, formats: Path, isolated_db: Path) -> None:
    src = formats / "personahub_persona.jsonl"
    cli("personas", "import", str(src))
    rows = q(isolated_db, "SELECT source, source_line, import_id, imported_at IS NOT NULL FROM personas ORDER BY 2")
    assert [(r[0], r[1]) for r in rows] == [(str(src), 1), (str(src), 2), (str(src), 3)]
    import_id = rows[0][2]
    assert q(isolated_db, "SELECT import_id, status, imported, duplicates, rejected FROM imports") == [
        (import_id, "finished", 3, 0, 0)
    ]


RECORDS = [
    {
        "persona": "A harbour pilot who guides container ships into Rotterdam at night.",
        "age": 47,
        "country": "Netherlands",
        "hobbies": ["sailing", "chess"],
    },
    {
        "persona": "A pastry chef in Lyon experimenting with low-sugar croissants.",
        "age": 29,
        "country": "France",
        "hobbies": ["cycling"],
    },
    {"persona": "A soil scientist mapping peat bogs in Finland.", "age": 61, "country": "None", "hobbies": []},
]


def _write(path: Path, fmt: str) -> Path:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    elif fmt == "json":
        path.write_text(json.dumps(RECORDS, indent=2))
    elif fmt in ("csv", "tsv", "parquet"):
        con = duckdb.connect()
        con.execute("CREATE TABLE t (persona VARCHAR, age BIGINT, country VARCHAR, hobbies VARCHAR)")
        for r in RECORDS:  # CSV exports carry lists as Python reprs, like Nemotron-Personas
            con.execute("INSERT INTO t VALUES (?, ?, ?, ?)", [r["persona"], r["age"], r["country"], repr(r["hobbies"])])
        options = {"csv": "(HEADER)", "tsv": "(HEADER, DELIMITER '\t')", "parquet": "(FORMAT parquet)"}[fmt]
        con.execute(f"COPY t TO '{path}' {options}")
    elif fmt == "txt":
        path.write_text("\n".join(r["persona"] for r in RECORDS) + "\n\n")
    elif fmt == "jsonl.gz":
        with gzip.open(path, "wt") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in RECORDS)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet", "txt", "jsonl.gz"])
def test_every_format_gives_the_same_personas(cli: Cli, tmp_path: Path, isolated_db: Path, fmt: str) -> None:
    path = _write(tmp_path / f"people.{fmt}", fmt)
    code, out, err = cli("personas", "import", str(path))
    assert code == 0, err
    assert "3 imported, 0 duplicates, 0 rejected" in out
    rows = q(isolated_db, "SELECT text, source_line, attributes FROM personas ORDER BY source_line")
    assert [r[0] for r in rows] == [r["persona"] for r in RECORDS]
    if fmt == "txt":
        assert [r[1] for r in rows] == [1, 2, 3] and all(json.loads(r[2]) == {} for r in rows)
        return
    assert [r[1] for r in rows] == ([2, 3, 4] if fmt in ("csv", "tsv") else [1, 2, 3])
    assert [json.loads(r[2]) for r in rows] == [
        {"age": 47, "country": "Netherlands", "hobbies": ["sailing", "chess"]},
        {"age": 29, "country": "France", "hobbies": ["cycling"]},
        {"age": 61, "country": None, "hobbies": []},
    ]
    assert q(isolated_db, "SELECT count(*) FROM personas_flat WHERE age > 40 AND list_contains(hobbies, 'chess')") == [
        (1,)
    ]


def test_format_flag_overrides_the_extension(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    path = _write(tmp_path / "people.data", "jsonl")
    code, _, err = cli("personas", "import", str(path))
    assert code == 1 and "--format" in err
    code, out, _ = cli("personas", "import", str(path), "--format", "jsonl")
    assert code == 0 and "3 imported" in out


def test_named_fields_and_a_file_without_a_text_field(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    path = tmp_path / "bios.jsonl"
    path.write_text(
        json.dumps({"uid": "u-1", "bio": "A glassblower who restores church windows.", "city": "Prague"}) + "\n"
    )
    code, _, err = cli("personas", "import", str(path))
    assert code == 1
    assert "'uid', 'bio', 'city'" in err and "--text-field" in err
    assert q(isolated_db, "SELECT count(*) FROM personas") == [(0,)]
    code, _out, err = cli("personas", "import", str(path), "--text-field", "bio", "--id-field", "uid")
    assert code == 0, err
    assert q(isolated_db, "SELECT persona_id, text, attributes FROM personas") == [
        ("u-1", "A glassblower who restores church windows.", '{"city":"Prague"}')
    ]
    code, _, err = cli("personas", "import", str(path), "--text-field", "biography")
    assert code == 1 and "'biography' is not a field" in err


def test_text_and_id_fields_leave_the_attributes_and_nothing_else_does(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    row = {
        "zone": None,
        "it's.bio": "A beekeeper who maps wild hives along the railway.",
        "tags": ["bees", None],
        "user id": "u-7",
        "profile": {"it's.bio": "nested, so kept", "user id": 3},
        "age": 61,
    }
    path = _jsonl(tmp_path / "odd_keys.jsonl", [row])
    code, _, err = cli("personas", "import", str(path), "--text-field", "it's.bio", "--id-field", "user id")
    assert code == 0, err
    assert q(isolated_db, "SELECT persona_id, text, attributes FROM personas") == [
        (
            "u-7",
            "A beekeeper who maps wild hives along the railway.",
            '{"zone":null,"tags":["bees",null],"profile":{"it\'s.bio":"nested, so kept","user id":3},"age":61}',
        )
    ], "only the top-level text and id keys leave; order, nulls and nested keys stay"


def test_keys_that_are_not_ascii_are_fields_like_any_other(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    path = tmp_path / "personas_es.jsonl"
    rows = [
        {"perfil": "Una arquitecta de Valparaíso que restaura ascensores antiguos.", "país": "Chile", "edad": 41},
        {"perfil": "Un pescador de Vigo que estudia astronomía.", "país": "España", "edad": 58},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    code, _, err = cli("personas", "import", str(path), "--text-field", "perfil")
    assert code == 0, err
    assert q(isolated_db, "SELECT attributes FROM personas ORDER BY source_line") == [
        ('{"país":"Chile","edad":41}',),
        ('{"país":"España","edad":58}',),
    ], "the text field is removed from the attributes, whatever its key"
    code, out, err = cli("personas", "count", "--where", "país = 'Chile' AND edad > 40")
    assert code == 0 and out.strip().endswith("1"), (out, err)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_attributes_are_typed_columns_of_personas_widened_when_files_disagree(
    cli: Cli, tmp_path: Path, isolated_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fields, "TYPE_SAMPLE", 2)  # so the third record's key is seen only past the sample
    first = _jsonl(
        tmp_path / "first.jsonl",
        [
            {"persona": "A ferry engineer in Bergen.", "age": 44, "tags": [], "Zip": "02134", "rank": 1},
            {"persona": "A beekeeper in Umbria.", "age": 39, "tags": ["bees"], "zip": "06081"},
            {"persona": "A sign painter in Lagos.", "age": 52, "tags": ["paint"], "late": 7},
        ],
    )
    code, _, err = cli("personas", "import", str(first))
    assert code == 0, err
    columns = {name: sql_type for name, sql_type, *_ in q(isolated_db, "DESCRIBE personas")}
    # an empty list is not a type of its own; keys equal but for case get columns of their own
    assert {k: columns[k] for k in ("age", "tags", "Zip", "zip_2", "late")} == {
        "age": "BIGINT",
        "tags": "VARCHAR[]",
        "Zip": "VARCHAR",
        "zip_2": "VARCHAR",
        "late": "VARCHAR",
    }
    assert q(isolated_db, 'SELECT age, tags, "Zip", zip_2, late FROM personas ORDER BY source_line') == [
        (44, [], "02134", None, None),
        (39, ["bees"], None, "06081", None),
        (52, ["paint"], None, None, "7"),
    ]
    code, out, _ = cli("personas", "count", "--where", "age > 40 AND list_contains(tags, 'paint')")
    assert code == 0 and out.strip() == "1"

    second = _jsonl(tmp_path / "second.jsonl", [{"persona": "A retired cartographer.", "age": "unknown"}])
    code, _, err = cli("personas", "import", str(second))
    assert code == 0, err
    assert q(isolated_db, "SELECT sql_type FROM persona_fields WHERE field = 'age'") == [("VARCHAR",)]
    assert q(isolated_db, "SELECT age FROM personas ORDER BY imported_at, source_line") == [
        ("44",),
        ("39",),
        ("52",),
        ("unknown",),
    ]
    code, out, _ = cli("personas", "count", "--where", "age = 'unknown'")
    assert code == 0 and out.strip() == "1"

    # a known key that this file has only past the typed sample keeps its column's type
    third = _jsonl(
        tmp_path / "third.jsonl",
        [{"persona": "A night-bus driver."}, {"persona": "A harpsichord tuner."}, {"persona": "A diver.", "rank": 5}],
    )
    code, _, err = cli("personas", "import", str(third))
    assert code == 0, err
    assert q(isolated_db, "SELECT sql_type FROM persona_fields WHERE field = 'rank'") == [("BIGINT",)]
    assert q(isolated_db, "SELECT rank FROM personas WHERE rank IS NOT NULL ORDER BY rank") == [(1,), (5,)]


def _bad_file(tmp_path: Path) -> Path:
    lines = [
        json.dumps({"persona": "A lighthouse keeper who logs seabird counts."}).encode(),
        b'{"persona": "broken json',
        b'["a list, not an object"]',
        json.dumps({"persona": "   "}).encode(),
        json.dumps({"persona": "x" * 5000}).encode(),
        '{"persona": "Une boulangère à Nîmes"}'.encode("latin-1"),
        json.dumps({"name": "no text here"}).encode(),
        json.dumps({"persona": 42}).encode(),
        b"",
        json.dumps({"persona": "A tram driver in Melbourne learning Italian."}).encode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_lines_are_reported_with_file_line_and_reason_and_the_rest_imported(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    path = _bad_file(tmp_path)
    code, out, err = cli("personas", "import", str(path))
    assert code == 0
    expected = {
        2: "bad_json",
        3: "not_an_object",
        4: "empty_text",
        5: "too_long",
        6: "bad_encoding",
        7: "no_text",
        8: "text_not_string",
    }
    for line, reason in expected.items():
        assert f"{path}:{line}: {reason}" in err
    assert "2 imported, 0 duplicates, 7 rejected" in out
    assert q(isolated_db, "SELECT source_line FROM personas ORDER BY 1") == [(1,), (10,)]
    stored = dict(q(isolated_db, "SELECT line, reason FROM import_rejects"))
    assert stored == expected
    raw = dict(q(isolated_db, "SELECT line, raw FROM import_rejects WHERE line IN (2, 3)"))
    assert raw == {2: '{"persona": "broken json', 3: '["a list, not an object"]'}


def test_odd_keys_and_list_types_across_files(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    first = _jsonl(tmp_path / "a.jsonl", [{"persona": "A roofer in Tallinn.", "": "blank key", "scores": [3, 4]}])
    code, _, err = cli("personas", "import", str(first))
    assert code == 0, err
    assert q(isolated_db, "SELECT attr_, scores FROM personas") == [("blank key", [3, 4])]
    # a file whose lists are all empty does not make a typed list column JSON
    second = _jsonl(tmp_path / "b.jsonl", [{"persona": "A cellist in Lviv.", "scores": [], "notes": None}])
    code, _, err = cli("personas", "import", str(second))
    assert code == 0, err
    types = dict(q(isolated_db, "SELECT field, sql_type FROM persona_fields"))
    assert types["scores"] == "BIGINT[]" and types["notes"] == "NULL"
    code, out, _ = cli("personas", "count", "--where", "list_contains(scores, 4)")
    assert code == 0 and out.strip() == "1"


def test_a_file_name_with_glob_characters_is_read_as_itself(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    _jsonl(tmp_path / "batch1.jsonl", [{"persona": "The wrong file's persona."}])
    odd = _jsonl(tmp_path / "batch[1].jsonl", [{"persona": "A lock keeper on the Canal du Midi."}])
    code, out, err = cli("personas", "import", str(odd))
    assert code == 0 and "1 imported" in out, (out, err)
    assert q(isolated_db, "SELECT text, source FROM personas") == [("A lock keeper on the Canal du Midi.", str(odd))]
    broken = tmp_path / "batch[2].parquet"
    broken.write_bytes(b"not parquet at all")
    code, _, err = cli("personas", "import", str(broken))
    assert code != 0 and f"{broken}: not a readable Parquet file" in err.replace("\n", ""), err


def test_csv_row_with_several_faults_is_one_reject_and_the_rows_keep_their_lines(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b'persona,age\n"A weaver",1\n"A sm\xffith",2,3,4\n"A cooper",3\n')
    code, _, err = cli("personas", "import", str(path), "--strict")
    assert code == 1 and "nothing was imported" in err
    code, out, err = cli("personas", "import", str(path))
    assert code == 0 and "2 imported, 0 duplicates, 1 rejected" in out, (out, err)
    assert q(isolated_db, "SELECT text, source_line FROM personas ORDER BY 2") == [("A weaver", 2), ("A cooper", 4)]
    assert [line for line, _ in q(isolated_db, "SELECT line, reason FROM import_rejects WHERE reason <> 'strict'")] == [
        3,
        3,
    ], "the refused --strict import and this one each record line 3 once"


def test_source_ids_go_to_first_copies_and_kept_copies_get_ids_of_their_own(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    path = _jsonl(
        tmp_path / "ids.jsonl",
        [
            {"persona": "Alpha person", "id": "X"},
            {"persona": "alpha  PERSON", "id": "Y"},  # a later copy of line 1: removed, so "Y" stays free
            {"persona": "Beta person", "id": "Y"},
        ],
    )
    code, out, err = cli("personas", "import", str(path), "--id-field", "id")
    assert code == 0 and "2 imported, 1 duplicates" in out, (out, err)
    assert q(isolated_db, "SELECT persona_id, text FROM personas ORDER BY source_line") == [
        ("X", "Alpha person"),
        ("Y", "Beta person"),
    ]
    copies = _jsonl(tmp_path / "copies.jsonl", [{"persona": "A mime in Lyon."}] * 3)
    code, out, err = cli("personas", "import", str(copies), "--dedup", "none")
    assert code == 0 and "3 imported" in out, (out, err)
    ids = [r[0] for r in q(isolated_db, "SELECT persona_id FROM personas WHERE text = 'A mime in Lyon.'")]
    assert len(set(ids)) == 3


def test_a_later_file_keeps_no_copy_of_the_hub_and_takes_no_id_the_hub_has(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    first = _jsonl(tmp_path / "first.jsonl", [{"persona": "Alpha person", "id": "X"}])
    assert cli("personas", "import", str(first), "--id-field", "id")[0] == 0
    later = [
        {"persona": "ALPHA   person", "id": "W"},  # a copy of the hub's persona: removed
        {"persona": "Gamma person", "id": "X"},  # the hub has X
        {"persona": "Delta person", "id": "X"},  # so does the line before
        {"persona": "Epsilon person", "id": "Z"},
    ]
    code, out, err = cli("personas", "import", str(_jsonl(tmp_path / "later.jsonl", later)), "--id-field", "id")
    assert code == 0 and "3 imported, 1 duplicates" in out, (out, err)
    rows = q(isolated_db, "SELECT persona_id, text FROM personas ORDER BY source, source_line")
    assert rows[0] == ("X", "Alpha person") and rows[3] == ("Z", "Epsilon person")
    assert [r[0][:2] for r in rows[1:3]] == ["p_", "p_"], "an id the hub has goes to neither later persona"
    assert q(isolated_db, "SELECT count(DISTINCT persona_id) FROM personas") == [(4,)]


def test_lines_after_bad_bytes_keep_their_numbers_in_a_file_read_in_parallel(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    bad = {7, 60_001, 149_999}
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        for n in range(1, 150_001):
            line = json.dumps({"persona": f"Persona number {n}, who keeps a logbook of line {n}.", "n": n}).encode()
            fh.write(line.replace(b"number", b"num\xffber") if n in bad else line)
            fh.write(b"\n")
    code, out, err = cli("personas", "import", str(path))
    assert code == 0, err
    assert "149997 imported, 0 duplicates, 3 rejected" in out
    assert dict(q(isolated_db, "SELECT line, reason FROM import_rejects")) == {n: "bad_encoding" for n in bad}
    # every persona's line is the line its text names, also past each bad line
    assert q(
        isolated_db, "SELECT count(*) FROM personas WHERE source_line <> n OR text NOT LIKE '%line ' || n || '.'"
    ) == [(0,)]


def test_strict_imports_nothing_when_any_line_is_bad(
    cli: Cli, tmp_path: Path, isolated_db: Path, formats: Path
) -> None:
    code, _out, err = cli(
        "personas", "import", str(formats / "personahub_persona.jsonl"), str(_bad_file(tmp_path)), "--strict"
    )
    assert code == 1
    assert "nothing was imported" in err and ":2: bad_json" in err
    assert q(isolated_db, "SELECT count(*) FROM personas") == [(0,)]
    assert q(isolated_db, "SELECT status, imported, rejected FROM imports") == [("strict_refused", 0, 7)]


def test_reimporting_adds_nothing_and_exact_dedup_ignores_case_and_spacing(
    cli: Cli, tmp_path: Path, isolated_db: Path, formats: Path
) -> None:
    src = formats / "personahub_persona.jsonl"
    cli("personas", "import", str(src))
    code, out, _ = cli("personas", "import", str(src))
    assert code == 0 and "0 imported, 3 duplicates, 0 rejected" in out
    variant = tmp_path / "variant.jsonl"
    variant.write_text(
        json.dumps(
            {
                "persona": "a  NIGHT-SHIFT paramedic in Glasgow who reads about sleep science\t"
                "to cope with rotating rosters."
            }
        )
        + "\n"
        + json.dumps({"persona": "A brand new persona: a ferry engineer in Oslo."})
        + "\n"
        + json.dumps({"persona": "A brand new persona: a ferry engineer in Oslo."})
        + "\n"
    )
    code, out, _ = cli("personas", "import", str(variant))
    assert "1 imported, 2 duplicates, 0 rejected" in out
    assert q(isolated_db, "SELECT count(*) FROM personas") == [(4,)]


def test_near_duplicates_are_removed_only_when_asked_and_recorded(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    base = (
        "A retired marine engineer in Cork who restores old diesel engines, teaches knot tying to scouts, "
        "keeps detailed logbooks of every repair, and reads about tidal energy projects on the Irish coast"
    )
    texts = [base + ".", base + " today.", "A completely different persona: a beekeeper in Umbria."]
    path = tmp_path / "near.jsonl"
    path.write_text("".join(json.dumps({"persona": t}) + "\n" for t in texts))
    code, out, _ = cli("personas", "import", str(path), "--dedup", "near")
    assert code == 0 and "2 imported, 0 duplicates, 1 near-duplicates" in out
    assert q(isolated_db, "SELECT line, reason, detail FROM import_rejects") == [
        (2, "near_duplicate", "near-duplicate of line 1 of this file")
    ]
    other = tmp_path / "again.jsonl"
    other.write_text(json.dumps({"persona": base + " again."}) + "\n")
    code, out, _ = cli("personas", "import", str(other), "--dedup", "near")
    assert "0 imported, 0 duplicates, 1 near-duplicates" in out
    code, out, _ = cli("personas", "import", str(other))  # exact dedup keeps a near-duplicate
    assert "1 imported" in out


def test_csv_rows_with_broken_structure_are_reported_with_their_line(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "persona,age\n"
        "A rope-access technician who inspects wind turbines.,34\n"
        "A broken row,1,extra\n"
        "A school librarian who runs a chess club.,52\n"
    )
    code, _out, err = cli("personas", "import", str(path))
    assert code == 0
    assert f"{path}:3: csv_too_many_columns" in err
    assert q(isolated_db, "SELECT source_line, text FROM personas ORDER BY 1") == [
        (2, "A rope-access technician who inspects wind turbines."),
        (4, "A school librarian who runs a chess club."),
    ]


def test_json_documents_tinytroupe_fragments_and_unreadable_files(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    fragment = tmp_path / "skills.fragment.json"
    fragment.write_text(json.dumps({"type": "Fragment", "persona": {"skills": ["welding"]}}))
    code, out, err = cli("personas", "import", str(fragment))
    assert code == 0 and "tinytroupe_fragment" in err and "0 imported" in out
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"personas": [{"persona": "A kite surfer who repairs sails."}, "oops"]}))
    code, out, err = cli("personas", "import", str(wrapped))
    assert "1 imported" in out and f"{wrapped}:2: not_an_object" in err
    code, _, err = cli("personas", "import", str(tmp_path / "missing.jsonl"))
    assert code == 1 and "no such file" in err
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    code, _, err = cli("personas", "import", str(broken))
    assert code == 1 and "not a readable Parquet file" in err
    assert "Traceback" not in err
    numbered = tmp_path / "numbered.parquet"
    duckdb.connect().execute(f"COPY (SELECT 'A diver.' AS persona, 7 AS file_row_number) TO '{numbered}'")
    code, _, err = cli("personas", "import", str(numbered))
    assert code == 1 and "has a column named file_row_number" in err and "rename the column" in err, err


def _nested(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def test_json_nested_too_deep_is_a_bad_json_reject_in_json_and_jsonl(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    keeper = {"persona": "A glassblower in Murano who teaches evening classes."}
    lines = tmp_path / "deep.jsonl"
    lines.write_text(
        "\n".join(
            [
                json.dumps(keeper),
                '{"persona": ' + _nested(100_000) + "}",  # the text itself
                '{"persona": "A ferry pilot who keeps bees.", "notes": ' + "[" * 100_000 + "]" * 100_000 + "}",
                '{"persona": "A tram driver in Porto.", "notes": ' + _nested(600) + "}",  # Python reads this one
                json.dumps({"persona": {"name": "x" * 5000}}),
                json.dumps({"persona": "A tailor in Accra who sews kente."}),
                json.dumps({"persona": "A cooper in Cognac.", "tags": "[" * 100_000 + "]" * 100_000}),  # a string
            ]
        )
        + "\n"
    )
    code, out, err = cli("personas", "import", str(lines))
    assert code == 0 and "Traceback" not in err
    assert f"{lines}:2: bad_json (nested 100001 levels deep, over the limit of 512)" in err
    assert f"{lines}:3: bad_json (nested 100001 levels deep, over the limit of 512)" in err
    assert f"{lines}:4: bad_json (nested 601 levels deep, over the limit of 512)" in err
    # an object where the text should be is not a string: it says so (not that it is too long)
    assert f"{lines}:5: text_not_string (the 'persona' field is object, not a string)" in err
    assert "3 imported, 0 duplicates, 4 rejected" in out
    assert q(isolated_db, "SELECT source_line FROM personas ORDER BY 1") == [(1,), (6,), (7,)]
    assert attrs(isolated_db, "source_line = 7") == {"tags": "[" * 100_000 + "]" * 100_000}, "not a list: kept as text"

    # one JSON document is read whole, so it is refused whole, at the line where it goes too deep
    document = tmp_path / "deep.json"
    document.write_text("[" + json.dumps(keeper) + ",\n" + "[" * 100_000 + "]" * 100_000 + "]")
    code, out, err = cli("personas", "import", str(document))
    assert code == 0 and "Traceback" not in err
    assert (
        f"{document}:2: bad_json (nested 100001 levels deep, over the limit of 512: the document cannot be read)" in err
    )
    assert "0 imported, 0 duplicates, 1 rejected" in out
    within = tmp_path / "within.json"  # deep, but readable: only that record is refused, as in JSON Lines
    within.write_text(
        "[" + json.dumps({"persona": "A sail maker in Kiel."}) + ', {"persona": "x", "n": ' + _nested(600) + "}]"
    )
    code, out, err = cli("personas", "import", str(within))
    assert f"{within}:2: bad_json (nested 601 levels deep, over the limit of 512)" in err and "1 imported" in out
    stored = q(isolated_db, "SELECT source, line FROM import_rejects WHERE reason = 'bad_json'")
    assert sorted(stored) == sorted(
        [(str(lines), 2), (str(lines), 3), (str(lines), 4), (str(document), 2), (str(within), 2)]
    )


def test_control_characters_are_taken_out_of_persona_texts_which_are_hashed_as_stored(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    path = _jsonl(
        tmp_path / "controls.jsonl",
        [
            {"persona": "A baker\u0000 in Lyon\u0007 who tests\u001b sourdough."},
            {"persona": "A baker in Lyon who tests sourdough."},  # the same persona, once cleaned
            {"persona": "\u0000\u0001 \u0002"},  # nothing left
            {"persona": "A tram driver\u000bwho reads\tand writes\nletters.\f"},
        ],
    )
    code, out, err = cli("personas", "import", str(path))
    assert code == 0, err
    assert "2 imported, 1 duplicates, 1 rejected" in out and f"{path}:3: empty_text" in err
    assert q(isolated_db, "SELECT source_line, text FROM personas ORDER BY 1") == [
        (1, "A baker in Lyon who tests sourdough."),
        (4, "A tram driver who reads\tand writes\nletters."),  # vertical tab and form feed were spaces
    ]
    text = tmp_path / "controls.txt"  # every format is cleaned alike, and dedups against what is stored
    text.write_bytes(b"A baker in Lyon who\x00 tests sourdough.\nA potter\x00 in Kyoto\x1f who glazes bowls.\n")
    code, out, err = cli("personas", "import", str(text))
    assert code == 0, err
    assert "1 imported, 1 duplicates, 0 rejected" in out
    assert q(isolated_db, "SELECT text FROM personas WHERE source = " + repr(str(text))) == [
        ("A potter in Kyoto who glazes bowls.",)
    ]
    assert q(
        isolated_db, r"SELECT count(*) FROM personas WHERE regexp_matches(text, '[\x00-\x08\x0b\x0c\x0e-\x1f]')"
    ) == [(0,)]


def test_line_ends_marks_blank_lines_and_block_edges_keep_every_line_number(
    cli: Cli, tmp_path: Path, isolated_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_hub import lines

    monkeypatch.setattr(lines, "BLOCK_BYTES", 64)  # every line crosses a block edge
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 300)

    def record(n: int) -> bytes:
        return json.dumps({"persona": f"Persona on line {n}, who reads the paper.", "n": n}).encode()

    body = [
        b"\xef\xbb\xbf" + record(1) + b"\r\n",  # a byte-order mark, a Windows line end
        b"\n",  # blank
        b"    \r\n",  # spaces only: blank
        b"\t\n",  # a tab is not blank: a bad record
        record(5) + b"\n",
        b'{"persona": "' + b"x" * 400 + b'"}\n',  # over MAX_LINE_BYTES
        record(7) + b"\r\n",
        b'{"persona": "caf\xe9"}\n',  # Latin-1, not UTF-8
        record(9),  # the last line has no line end
    ]
    path = tmp_path / "edges.jsonl"
    path.write_bytes(b"".join(body))
    code, out, err = cli("personas", "import", str(path))
    assert code == 0, err
    assert "4 imported, 0 duplicates, 3 rejected" in out, out
    assert q(isolated_db, "SELECT source_line, CAST(attributes->>'n' AS INT) FROM personas ORDER BY 1") == [
        (n, n) for n in (1, 5, 7, 9)
    ]
    assert q(isolated_db, "SELECT text FROM personas WHERE source_line = 9") == [
        ("Persona on line 9, who reads the paper.",)
    ]
    assert dict(q(isolated_db, "SELECT line, reason FROM import_rejects")) == {
        4: "bad_json",
        6: "too_long",
        8: "bad_encoding",
    }
    assert q(isolated_db, "SELECT raw FROM import_rejects WHERE line = 4") == [("\t",)], "stored without its line end"


def test_an_import_stopped_before_its_copies_were_removed_is_finished_by_the_next(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    first = tmp_path / "first.jsonl"
    first.write_text("".join(json.dumps({"persona": f"Person {i % 3} of the first file"}) + "\n" for i in range(6)))
    assert cli("personas", "import", str(first), "--dedup", "none")[0] == 0
    assert q(isolated_db, "SELECT count(*) FROM personas") == [(6,)]
    # as an exact import leaves the hub when stopped between its commit and the removal of its copies
    con = duckdb.connect(str(isolated_db))
    con.execute("UPDATE imports SET status = 'removing_copies'")
    con.close()
    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps({"persona": "Someone else entirely"}) + "\n")
    code, _, err = cli("personas", "import", str(second))
    assert code == 0, err
    assert q(isolated_db, "SELECT text, source_line FROM personas ORDER BY source, source_line") == [
        ("Person 0 of the first file", 1),
        ("Person 1 of the first file", 2),
        ("Person 2 of the first file", 3),
        ("Someone else entirely", 1),
    ]
    assert q(isolated_db, "SELECT DISTINCT status FROM imports") == [("finished",)]


def test_near_dedup_indexes_the_hub_once_and_checks_new_personas_against_it(
    cli: Cli, tmp_path: Path, isolated_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_hub import near_dedup

    monkeypatch.setattr(near_dedup, "BATCH", 2)  # batches hashed in worker processes, as at scale
    base = "A night-shift baker in Lyon who proofs sourdough for three cafes and restores enamel signs"
    first = tmp_path / "first.jsonl"
    first.write_text(
        "".join(json.dumps({"persona": t}) + "\n" for t in (base + ".", "A glassblower in Murano.", "!!!"))
    )
    assert cli("personas", "import", str(first))[0] == 0  # exact only: nothing indexed yet
    assert q(isolated_db, "SELECT count(*) FROM persona_minhash") == [(0,)]
    second = tmp_path / "second.jsonl"
    lines = [
        base + " today.",
        "A tram driver in Lisbon who collects maps.",
        "A tram driver in Lisbon who collects maps!",
    ]
    second.write_text("".join(json.dumps({"persona": t}) + "\n" for t in lines))
    code, out, err = cli("personas", "import", str(second), "--dedup", "near")
    assert code == 0 and "1 imported, 0 duplicates, 2 near-duplicates" in out, (out, err)
    older = q(isolated_db, f"SELECT persona_id FROM personas WHERE text = '{base}.'")[0][0]
    assert dict(q(isolated_db, "SELECT line, detail FROM import_rejects WHERE reason = 'near_duplicate'")) == {
        1: f"near-duplicate of {older}",
        3: "near-duplicate of line 2 of this file",
    }
    # the hub's texts with words, and the kept new one, are indexed; a text without words is not
    assert q(isolated_db, "SELECT count(*) FROM persona_minhash") == [(3,)]
    assert q(isolated_db, "SELECT count(*) FROM personas") == [(4,)]


def test_a_damaged_or_false_gzip_file_is_refused_with_its_name_and_nothing_imported(
    cli: Cli, tmp_path: Path, isolated_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_hub import lines

    monkeypatch.setattr(lines, "BLOCK_BYTES", 4096)  # the damage lies past the first lines the import reads
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"persona": "A ferry pilot in Bergen"}) + "\n")
    data = gzip.compress(
        b"".join(json.dumps({"persona": f"Person {i} who restores clocks"}).encode() + b"\n" for i in range(30_000))
    )
    damaged = tmp_path / "damaged.jsonl.gz"
    damaged.write_bytes(data[: len(data) * 3 // 4])
    false = tmp_path / "false.jsonl.gz"
    false.write_text('{"persona": "not compressed at all"}\n')
    for path, why in ((damaged, "cannot be read to the end (Compressed file ended"), (false, "Not a gzipped file")):
        code, _, err = cli("personas", "import", str(good), str(path))
        assert code == 1 and f"{path}: " in err and why in err and "Traceback" not in err, err
    assert q(isolated_db, "SELECT count(*) FROM personas") == [(0,)], "the import is one transaction"


def test_a_file_of_one_text_reworded_is_one_persona_and_its_near_copies(
    cli: Cli, tmp_path: Path, isolated_db: Path
) -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    rng = random.Random(3)
    lines = []
    for i in range(2_000):  # the same ten words, shuffled and punctuated: no two lines are exact copies
        rng.shuffle(words)
        lines.append(json.dumps({"persona": " ".join(words) + "." * (i % 7) + "!" * (i // 7)}))
    path = tmp_path / "reworded.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = cli("personas", "import", str(path), "--dedup", "near")
    assert code == 0 and "1 imported, 0 duplicates, 1999 near-duplicates" in out, (out, err)
    assert q(isolated_db, "SELECT DISTINCT detail FROM import_rejects") == [("near-duplicate of line 1 of this file",)]


def test_a_parquet_file_read_from_its_columns_gives_what_its_json_gives(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Parquet file's own columns are read directly (`records.from_columns`); forcing the JSON route
    on the same file must store the same personas, columns and rejects."""
    path = tmp_path / "tricky.parquet"
    duckdb.connect().execute(
        f"""COPY (SELECT * FROM (VALUES
            (1, 'A welder who builds   bridges.', '42', 'None', ['oak', NULL], {{'a': 1, 'b': NULL}},
             1.50::DECIMAL(4,2)),
            (2, '  a WELDER who builds bridges.  ', '43', 'null', [], {{'a': 2, 'b': 'x'}}, 2.0),
            (3, 'Bell' || chr(7) || 'ringer' || chr(11) || 'who tunes ' || chr(12) || 'chimes.', '', '[''a'', ''b'']',
             NULL, NULL, NULL),
            (4, '', 'x', 'NaN', ['p'], {{'a': 3, 'b': 'y'}}, 0.1),
            (5, '   ', 'x', 'Lima', ['q'], {{'a': 4, 'b': 'z'}}, 0.2),
            (6, NULL, 'x', 'Lima', ['r'], {{'a': 5, 'b': 'w'}}, 0.3),
            (7, repeat('long ', 30), 'x', '["u", "v"]', ['s'], {{'a': 6, 'b': 'v'}}, 0.4),
            (8, 'Un peintre de Lyon "qui" dit \\ tout.', 'é', 'Lyon', ['t'], {{'a': 7, 'b': 'u'}}, 1e3),
            (1, 'A nurse who keeps bees.', '50', 'Oslo', ['u'], {{'a': 8, 'b': NULL}}, -3.5)
        ) AS t(uid, persona, age, city, tags, extra, score)) TO '{path}' (FORMAT parquet)"""
    )

    def imported(db: Path) -> tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        monkeypatch.setenv("SWARM_DB", str(db))
        code, out, err = cli("personas", "import", str(path), "--id-field", "uid", "--max-chars", "100")
        assert code == 0, err
        out = out.splitlines()[0].split(": ", 1)[1]  # the counts, without the file's and the database's names
        columns = "persona_id, text, attributes, text_hash, source_line, source_id, layout, age, city, tags, extra"
        return (
            out,
            q(db, f"SELECT {columns}, score FROM personas ORDER BY source_line"),
            q(db, "SELECT line, reason, detail, raw FROM import_rejects ORDER BY line"),
        )

    out, personas, rejects = imported(tmp_path / "columns.duckdb")
    monkeypatch.setattr("persona_hub.records.usable", lambda columns, layout: False)
    assert imported(tmp_path / "json.duckdb") == (out, personas, rejects)
    assert out == "4 imported, 1 duplicates, 4 rejected"
    assert [(r[0], r[1]) for r in rejects] == [(4, "empty_text"), (5, "empty_text"), (6, "no_text"), (7, "too_long")]
    by_line = {r[4]: r for r in personas}
    assert by_line[3][1] == "Bellringer who tunes  chimes.", "control characters out, VT and FF as spaces"
    assert by_line[1][2] == '{"age":"42","city":null,"tags":["oak",null],"extra":{"a":1,"b":null},"score":1.5}'
    assert by_line[3][8] == '["a","b"]', "a list written as a string is a list"
    assert (by_line[9][0], by_line[9][5]) == ("p_E1E60FBC063E4010", "1"), "an id taken on line 1 is not reused"


def test_typed_columns_read_from_a_parquet_files_columns_are_those_its_attributes_give(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed values are taken from the file's columns where they are what the attributes would give,
    also for values past the lines that set the types (two here): "None", lists written as text."""
    path = tmp_path / "typed.parquet"
    duckdb.connect().execute(
        f"""COPY (SELECT * FROM (VALUES
            ('Ana, a ferry pilot.', 1, 0.5, true, 'plain', ['a', 'None']),
            ('Ben, a glass blower.', -7, 'nan'::DOUBLE, false, 'also plain', []),
            ('Cy, a tram driver.', NULL, 'inf'::DOUBLE, NULL, 'None', NULL),
            ('Di, a luthier.', 9000000000, -0.0, true, '[''x'', ''y'']', ['b']),
            ('Ed, a cooper.', 3, 1e300, false, 'a [b] c', [NULL]),
            ('Fay, a farrier.', 4, 2.5, true, '', ['c']),
            ('Gus, a thatcher.', 5, 3.5, false, 'null', ['d'])
        ) AS t(persona, n, d, b, note, tags)) TO '{path}' (FORMAT parquet)"""
    )
    monkeypatch.setattr(fields, "TYPE_SAMPLE", 2)
    from persona_hub import records

    direct: list[dict[str, str]] = []
    real = records.typed_from_columns
    monkeypatch.setattr(records, "typed_from_columns", lambda *a: direct.append(real(*a)) or direct[-1])

    def imported(db: Path) -> list[tuple[Any, ...]]:
        monkeypatch.setenv("SWARM_DB", str(db))
        code, _, err = cli("personas", "import", str(path))
        assert code == 0, err
        return q(  # NaN is not NaN in Python: compare the doubles as text
            db,
            "SELECT * EXCLUDE (import_id, imported_at, source) REPLACE (CAST(d AS VARCHAR) AS d) "
            "FROM personas ORDER BY source_line",
        )

    from_columns = imported(tmp_path / "columns.duckdb")
    assert sorted(direct[0]) == ["b", "d", "n", "note", "tags"], direct
    monkeypatch.setattr(records, "usable", lambda columns, layout: False)
    assert imported(tmp_path / "json.duckdb") == from_columns
    notes = [r[-2] for r in from_columns]
    assert notes == ["plain", "also plain", None, '["x","y"]', "a [b] c", None, None], notes


def test_which_parquet_files_are_read_from_their_columns() -> None:
    from persona_hub import layouts, nesting, records

    layout = layouts.Layout("persona", "persona", "uid")
    assert records.usable({"persona": "VARCHAR", "uid": "BIGINT", "tags": "VARCHAR[]"}, layout)
    assert not records.usable({"persona": "INTEGER", "uid": "BIGINT"}, layout), "not text: _raw says why, per row"
    assert not records.usable({"persona": "VARCHAR", "uid": "DOUBLE"}, layout), "CAST and JSON write doubles apart"
    assert not records.usable({"persona": "VARCHAR"}, layout), "no id column"
    deep = "STRUCT(a " * nesting.MAX_DEPTH + "INTEGER" + ")" * nesting.MAX_DEPTH
    assert not records.usable({"persona": "VARCHAR", "uid": "VARCHAR", "deep": deep}, layout)
    assert records.attribute_keys({"persona": "VARCHAR", "uid": "VARCHAR", "age": "BIGINT"}, layout) == {"age"}
