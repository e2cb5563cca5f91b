"""`swarm personas count | sample | stats`: filters, reproducible samples, stratification."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import RUN, Cli

OCCUPATIONS = ["nurse"] * 30 + ["welder"] * 30 + ["farmer"] * 30 + ["astronaut"] * 2


@pytest.fixture
def hub(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "hub.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "persona": f"Persona number {i}, a {occ} who likes topic {i % 7}.",
                    "occupation": occ,
                    "age": 20 + i % 50,
                    "topics": [f"t{i % 7}", "common"],
                }
            )
            + "\n"
            for i, occ in enumerate(OCCUPATIONS)
        )
    )
    code, _, err = cli("personas", "import", str(path))
    assert code == 0, err


def _sample(cli: Cli, *args: str) -> list[dict]:
    code, out, err = cli("personas", "sample", "--format", "jsonl", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_count_with_and_without_a_filter(cli: Cli, hub: None) -> None:
    assert cli("personas", "count")[1].strip() == "92"
    assert cli("personas", "count", "--where", "occupation = 'nurse' AND age >= 40")[1].strip() == str(
        sum(1 for i, o in enumerate(OCCUPATIONS) if o == "nurse" and 20 + i % 50 >= 40)
    )
    assert cli("personas", "count", "--where", "list_contains(topics, 't3')")[1].strip() == str(
        sum(1 for i in range(92) if i % 7 == 3)
    )


def test_same_seed_same_sample_other_seed_other_sample(cli: Cli, hub: None) -> None:
    a = _sample(cli, "-n", "10", "--seed", "7")
    b = _sample(cli, "-n", "10", "--seed", "7")
    c = _sample(cli, "-n", "10", "--seed", "8")
    assert a == b and len(a) == 10
    assert [r["persona_id"] for r in a] != [r["persona_id"] for r in c]
    assert {"persona_id", "text", "attributes", "source", "source_line"} <= set(a[0])
    assert isinstance(a[0]["attributes"], dict)


def test_sample_respects_the_filter_and_says_when_too_few_match(cli: Cli, hub: None) -> None:
    rows = _sample(cli, "-n", "5", "--where", "occupation = 'welder'")
    assert len(rows) == 5 and all(r["attributes"]["occupation"] == "welder" for r in rows)
    code, _out, err = cli("personas", "sample", "-n", "5", "--where", "occupation = 'astronaut'")
    assert code == 0 and "only 2 personas match; asked for 5" in err


def test_stratified_sample_is_even_and_reports_small_strata(cli: Cli, hub: None) -> None:
    rows = _sample(cli, "-n", "12", "--stratify-by", "occupation", "--seed", "3")
    counts = Counter(r["occupation"] for r in rows)
    assert counts["astronaut"] == 2 and sorted(counts[o] for o in ("nurse", "welder", "farmer")) == [3, 3, 4]
    _code, _, err = cli("personas", "sample", "-n", "12", "--stratify-by", "occupation")
    assert "stratum occupation='astronaut' has only 2 personas" in err
    even = _sample(cli, "-n", "6", "--stratify-by", "occupation", "--where", "occupation <> 'astronaut'")
    assert Counter(r["occupation"] for r in even) == {"nurse": 2, "welder": 2, "farmer": 2}
    assert _sample(cli, "-n", "12", "--stratify-by", "occupation", "--seed", "3") == rows
    assert _sample(cli, "-n", "0", "--stratify-by", "occupation") == [] == _sample(cli, "-n", "0")


def test_bad_filters_give_one_clear_message(cli: Cli, hub: None) -> None:
    code, _, err = cli("personas", "count", "--where", "occupaton = 'nurse'")
    assert code == 1 and "bad --where" in err and "occupation" in err and "Traceback" not in err
    code, _, err = cli("personas", "sample", "--stratify-by", "nonsense")
    assert code == 1 and "is not a column" in err
    code, _, err = cli("personas", "count", "--where", "true); DROP TABLE personas; SELECT (1")
    assert code == 1
    assert cli("personas", "count")[1].strip() == "92"


def test_stats_shows_sources_attributes_and_imports(cli: Cli, hub: None) -> None:
    code, out, _ = cli("personas", "stats")
    assert code == 0
    assert "92 personas" in out and "hub.jsonl" in out
    assert "occupation" in out and "nurse (30)" in out and "common (92)" in out
    assert "finished" in out


# text that would close the generated `WHERE (…)` and rewrite the rest of the query: comment out its
# ORDER BY and LIMIT, add its own, append rows, or start a second statement
ESCAPES = [
    "true) --",
    "true) ORDER BY 1 LIMIT 1 --",
    "1=1) UNION ALL SELECT persona_id, 'injected', attributes, source, source_line, layout FROM personas --",
    "age > 30; SELECT 1",
]


@pytest.mark.parametrize("where", ESCAPES)
def test_a_filter_is_one_condition_and_cannot_rewrite_the_query(cli: Cli, hub: None, where: str) -> None:
    for command in (["count"], ["sample", "-n", "5"], ["sample", "-n", "6", "--stratify-by", "occupation"]):
        code, out, err = cli("personas", *command, "--where", where)
        assert code == 1 and out == "", (command, out)
        assert "bad --where" in err and "not one SQL condition" in err, err
        assert "You can filter on:" in err and "occupation" in err and "Traceback" not in err
    assert cli("personas", "count")[1].strip() == "92"
    assert len(_sample(cli, "-n", "5")) == 5


def test_a_filter_may_end_in_a_comment_and_the_sample_keeps_its_order_and_limit(cli: Cli, hub: None) -> None:
    welders = _sample(cli, "-n", "5", "--seed", "2", "--where", "occupation = 'welder'")
    assert len(welders) == 5
    assert _sample(cli, "-n", "5", "--seed", "2", "--where", "occupation = 'welder' -- only welders") == welders
    assert cli("personas", "count", "--where", "occupation = 'welder' -- only welders")[1].strip() == "30"


def test_a_run_refuses_a_filter_that_is_not_one_condition(cli: Cli, swarm_env: dict[str, str]) -> None:
    code, out, err = cli(*RUN, "-n", "3", "--turns", "1", "--where", "true) ORDER BY 1 LIMIT 1 --", "--quiet")
    assert code == 1 and "bad --where" in err and "not one SQL condition" in err, (out, err)
    code, out, _ = cli("query", "SELECT count(*) AS n FROM runs", "-f", "jsonl")
    assert code == 0 and json.loads(out) == {"n": 0}, "no run starts on a refused filter"


def _splitmix_order(db: Path, seed: int) -> list[str]:
    """The documented order, computed here from the stored hashes (persona_hub.sampling's docstring)."""
    import duckdb

    mask = (1 << 64) - 1
    seed_key = int.from_bytes(hashlib.md5(str(seed).encode()).digest()[:8], "little")

    def key(text_hash: int) -> int:
        z = (text_hash & mask) ^ seed_key
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT persona_id, text_hash FROM personas").fetchall()
    return [pid for pid, h in sorted(rows, key=lambda r: (key(int(r[1])), r[0]))]


def test_a_sample_is_the_first_personas_in_the_seeds_documented_order(cli: Cli, hub: None, isolated_db: Path) -> None:
    assert [r["persona_id"] for r in _sample(cli, "-n", "10", "--seed", "11")] == _splitmix_order(isolated_db, 11)[:10]


def test_new_personas_change_a_sample_only_when_they_qualify(cli: Cli, hub: None, tmp_path: Path) -> None:
    nurses = _sample(cli, "-n", "8", "--seed", "4", "--where", "occupation = 'nurse'")
    more = tmp_path / "more.jsonl"
    more.write_text(
        "".join(
            json.dumps({"persona": f"Welder {i} of the night shift", "occupation": "welder"}) + "\n" for i in range(50)
        )
    )
    assert cli("personas", "import", str(more))[0] == 0
    assert _sample(cli, "-n", "8", "--seed", "4", "--where", "occupation = 'nurse'") == nurses
    nurses_too = tmp_path / "nurses.jsonl"
    nurses_too.write_text(
        "".join(
            json.dumps({"persona": f"Nurse {i} of the night shift", "occupation": "nurse"}) + "\n" for i in range(50)
        )
    )
    assert cli("personas", "import", str(nurses_too))[0] == 0
    after = _sample(cli, "-n", "8", "--seed", "4", "--where", "occupation = 'nurse'")
    old = [r["persona_id"] for r in nurses]
    kept = [r["persona_id"] for r in after if r["persona_id"] in old]
    assert kept == old[: len(kept)], "the old sample's personas keep their order; new ones only push in"
    assert all(r["persona_id"] in old or r["text"].startswith("Nurse ") for r in after) and len(after) == 8


def test_copies_kept_by_dedup_none_tie_and_are_ordered_by_id(cli: Cli, tmp_path: Path, isolated_db: Path) -> None:
    twice = tmp_path / "twice.jsonl"
    lines = [json.dumps({"persona": f"Person {i} who repeats", "group": f"g{i % 3}"}) for i in range(12)]
    twice.write_text("".join(line + "\n" for line in lines + lines))
    assert cli("personas", "import", str(twice), "--dedup", "none")[0] == 0
    order = _splitmix_order(isolated_db, 9)
    for n in (1, 2, 3, 7):  # a cut between two copies, and after both
        assert [r["persona_id"] for r in _sample(cli, "-n", str(n), "--seed", "9")] == order[:n]
    stratified = _sample(cli, "-n", "9", "--stratify-by", "group", "--seed", "9")
    assert Counter(r["group"] for r in stratified) == {"g0": 3, "g1": 3, "g2": 3}
    assert stratified == _sample(cli, "-n", "9", "--stratify-by", "group", "--seed", "9")
    for group in ("g0", "g1", "g2"):  # within a stratum, the seed's order with ties by id
        ids = [r["persona_id"] for r in stratified if r["group"] == group]
        assert ids == sorted(ids, key=order.index)


def test_a_stratified_sample_is_the_same_whether_or_not_it_looks_at_the_first_keys_only(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the personas with the smallest keys are looked at (SURPLUS times the sample); a stratum
    too small for that is found again from all. The sample must be the one all personas give."""
    sizes = {"big": 1500, "mid": 300, "small": 40, "tiny": 3}
    path = tmp_path / "uneven.jsonl"
    path.write_text(
        "".join(
            json.dumps({"persona": f"A {group} person, number {i}", "group": group}) + "\n"
            for group, size in sizes.items()
            for i in range(size)
        )
    )
    assert cli("personas", "import", str(path))[0] == 0
    from persona_hub import sampling

    bounds: list[int | None] = []

    def strata(*args: Any) -> Any:
        bounds.append(args[-1])
        return real(*args)

    real = sampling._strata
    monkeypatch.setattr(sampling, "_strata", strata)
    for n, where in (("12", "true"), ("100", "true"), ("2000", "true"), ("12", "\"group\" IN ('big', 'mid')")):
        args = ("-n", n, "--stratify-by", "group", "--seed", "5", "--where", where)
        monkeypatch.setattr(sampling, "SURPLUS", 1 << 70)  # every persona
        everyone = _sample(cli, *args)
        for surplus in (8, 1):  # the default, and a bound too tight for most strata
            monkeypatch.setattr(sampling, "SURPLUS", surplus)
            bounds.clear()
            assert _sample(cli, *args) == everyone, (n, surplus)
            if (n, surplus) == ("12", 8):
                assert bounds[0] is not None and len(bounds) == (2 if "IN" not in where else 1), bounds
    assert Counter(r["group"] for r in _sample(cli, "-n", "12", "--stratify-by", "group")) == {
        "big": 3,
        "mid": 3,
        "small": 3,
        "tiny": 3,
    }


def test_the_rounds_a_round_robin_takes() -> None:
    from persona_hub.sampling import _rounds

    assert _rounds([400, 400, 400], 30) == 10
    assert _rounds([400, 400, 400], 31) == 11
    assert _rounds([2, 400, 400], 30) == 14, "the small stratum is used up after 2 rounds"
    assert _rounds([2, 3], 30) == 3, "fewer personas than asked: every one of them"
    assert _rounds([5, 5], 0) == 0 and _rounds([], 5) == 0


def test_rows_read_under_a_small_memory_limit_leave_the_limit_as_it_was(cli: Cli, hub: None, isolated_db: Path) -> None:
    from persona_hub.sampling import _read_rows
    from storage import Database

    with Database(isolated_db).read() as con:
        before = con.execute("SELECT current_setting('memory_limit')").fetchall()
        rids = [r[0] for r in con.execute("SELECT rowid FROM personas ORDER BY rowid DESC LIMIT 5").fetchall()]
        rows = _read_rows(con, "SELECT persona_id, rowid AS _rid FROM personas", rids, None)
        assert sorted(r["_rid"] for r in rows) == sorted(rids)
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == before


def test_rows_too_big_for_the_small_memory_limit_are_read_with_all_of_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "long_notes.jsonl"
    path.write_text(
        "".join(json.dumps({"persona": f"Archivist {i}", "notes": "x" * 100_000 + str(i)}) + "\n" for i in range(30))
    )
    assert cli("personas", "import", str(path))[0] == 0
    monkeypatch.setattr("persona_hub.sampling._READ_MEMORY", 1 << 20)  # 1 MB for 3 MB of rows
    monkeypatch.setattr("persona_hub.sampling._ROW_ROOM", 0)
    rows = _sample(cli, "-n", "30", "--seed", "2")
    assert len(rows) == 30 and all(len(r["attributes"]["notes"]) > 100_000 for r in rows)
