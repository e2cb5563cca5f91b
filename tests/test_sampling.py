"""`swarm personas count | sample | stats`: filters, reproducible samples, stratification."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

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
