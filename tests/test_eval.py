"""`swarm eval`: judges and checks over stored conversations against the test LLM server, resumably, and
the run's diversity figures; the judge step kinds in a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.llm.embeddings import _pooled
from agents.quality import diversity
from agents.quality.checks import claims
from agents.recipes import default
from tests.support.cli import RUN, Cli
from tests.support.llm_server import LLMServer
from tests.support.runs import rows

JUDGES = {"grounding_recall", "grounding_precision", "persona", "helpfulness"}


@pytest.fixture
def run_id(cli: Cli, swarm_env: dict[str, str]) -> str:
    code, out, err = cli(*RUN, "-n", "4", "--turns", "2", "--quiet")
    assert code == 0, err
    return out.strip().splitlines()[-1]


def judge_requests(server: LLMServer) -> list[str]:
    names = {"Grounding", "PersonaAdherence", "Helpfulness"}
    return [
        str(r["body"]["messages"][-1]["content"])
        for r in server.requests
        if ((r["body"].get("response_format") or {}).get("json_schema") or {}).get("name") in names
    ]


def test_eval_judges_every_conversation_once_and_goes_on_where_it_stopped(
    cli: Cli, run_id: str, llm_server: LLMServer, isolated_db: Path
) -> None:
    llm_server.schema_faults["PersonaAdherence"] = 2  # one conversation's persona judge fails, repair included
    code, out, err = cli("eval", "--run", run_id, "--judge", "all", "--concurrency", "1")
    assert code == 0, err
    said = " ".join(out.split())
    assert "judge grounding: 4 judged now" in said and "judge persona: 3 judged now" in said
    assert "failed: schema_invalid 1 (run the same command again to retry them)" in said
    stored = rows(
        isolated_db,
        "SELECT c.conversation_id, CAST(c.messages AS VARCHAR), q.check_name, q.score, q.passed, q.blocking, q.detail "
        "FROM conversations c JOIN quality q USING (conversation_id) WHERE c.run_id = ? AND q.check_name IN "
        "('grounding_recall', 'grounding_precision', 'persona', 'helpfulness')",
        [run_id],
    )
    assert len(stored) == 4 * 4 - 1
    for _, messages, name, score, passed, blocking, detail in stored:
        sentences = claims(json.loads(messages))
        cited = [(s, n) for s, n in sentences if n]
        # the test server's judge says: claim 1 supported, citation 2:1 irrelevant, scores at the minimum (1 of 5)
        if name == "grounding_recall":  # ALCE: of all the assistant's sentences
            assert score == round(1 / len(sentences), 4) and f"1 of {len(sentences)} assistant sentences" in detail
        elif name == "grounding_precision":  # the citations of claim 1, the only one supported
            citations = sum(len(set(n)) for _, n in cited)
            assert score == round(len(set(cited[0][1])) / citations, 4), detail
        else:
            assert (score, passed) == (0.0, False) and detail.startswith("1 on 1–5")
        assert not blocking
    asked = judge_requests(llm_server)
    grounding = [text for text in asked if "CLAIMS" in text]
    assert grounding and all("<<<SOURCES" in text and "1. " in text for text in grounding)
    # the judges read the sources as the assistant was given them: the same chunks, so the same fence tag
    fences = {line for text in grounding for line in text.splitlines() if line.startswith("<<<SOURCES")}
    given = {
        line
        for r in llm_server.requests
        for m in r["body"].get("messages", [])
        if m["role"] == "system"
        for line in str(m["content"]).splitlines()
        if line.startswith("<<<SOURCES")
    }
    assert fences and fences <= given
    texts = [t for (t,) in rows(isolated_db, "SELECT p.text FROM conversations c JOIN personas p USING (persona_id) "
                                "WHERE c.run_id = ?", [run_id])]  # fmt: skip
    rated = [text for text in asked if "plays a given persona" in text]
    assert len(rated) == 4 and all(any(persona in text for persona in texts) for text in rated)
    calls = rows(isolated_db, "SELECT purpose, count(*) FROM llm_calls WHERE run_id = ? GROUP BY 1", [run_id])
    assert {"grounding", "persona", "helpfulness"} <= {p for p, _ in calls}

    # the same command again: only the one that failed is judged, nothing else is asked
    before = len(llm_server.requests)
    code, out, err = cli("eval", "--run", run_id, "--judge", "all", "--no-diversity")
    said = " ".join(out.split())
    assert code == 0 and "judge persona: 1 judged now, 3 already judged" in said, err
    assert "judge grounding: 0 judged now, 4 already judged" in said
    assert len(llm_server.requests) - before == 1
    # and the run's summary shows the judges' distributions
    code, out, _ = cli("runs", "show", run_id)
    shown = " ".join(out.split())
    assert code == 0 and "persona mean 0.00 (quartiles 0.00 / 0.00 / 0.00), 0 of 4 pass" in shown
    assert "grounding_recall mean" in shown


def test_eval_recomputes_missing_checks_from_the_stored_pages(cli: Cli, run_id: str, isolated_db: Path) -> None:
    from storage import Database

    first = rows(isolated_db, "SELECT conversation_id, check_name, score FROM quality WHERE run_id = ?", [run_id])
    with Database(isolated_db).write() as con:
        con.execute("DELETE FROM quality WHERE run_id = ?", [run_id])
    code, out, err = cli("eval", "--run", run_id, "--no-diversity")
    assert code == 0 and "checks run on 4" in out, err
    again = rows(isolated_db, "SELECT conversation_id, check_name, score FROM quality WHERE run_id = ?", [run_id])
    assert sorted(again) == sorted(first), "the pages kept by source number give the same scores"


def test_eval_measures_the_runs_diversity_per_stratum(
    cli: Cli, run_id: str, llm_server: LLMServer, isolated_db: Path
) -> None:
    # an endpoint without embeddings: the lexical figures stand, the others say why not
    llm_server.embeddings = False
    code, out, err = cli("eval", "--run", run_id)
    assert code == 0 and "vendi_score: not worked out (embeddings:" in " ".join(out.split()), err
    lexical = rows(isolated_db, "SELECT value FROM run_metrics WHERE run_id = ? AND metric = 'distinct_1'", [run_id])
    llm_server.embeddings = True
    code, out, err = cli("eval", "--run", run_id, "--by", "country")
    assert code == 0, err
    figures = dict(
        rows(isolated_db, "SELECT metric, value FROM run_metrics WHERE run_id = ? AND stratum = ''", [run_id])
    )
    assert set(figures) == {"distinct_1", "distinct_2", "near_duplicate_rate", *diversity.SEMANTIC}
    assert figures["distinct_1"] == lexical[0][0]
    assert 0 < figures["distinct_1"] <= 1 and 0 < figures["distinct_2"] <= 1 and figures["near_duplicate_rate"] == 0
    assert 1 <= figures["vendi_score"] <= 4 and -1 <= figures["persona_similarity_correlation"] <= 1
    strata = {s for (s,) in rows(isolated_db, "SELECT DISTINCT stratum FROM run_metrics WHERE run_id = ?", [run_id])}
    assert any(s.startswith("country=") for s in strata)
    code, out, _ = cli("runs", "show", run_id)
    assert "distinct-1" in out and "Vendi score" in out


def test_eval_without_its_endpoint_still_checks_and_measures_what_needs_no_model(
    cli: Cli, run_id: str, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    code, out, err = cli("eval", "--run", run_id, "--force", "--base-url", "http://127.0.0.1:9/v1")
    said = " ".join(out.split())
    assert (
        code == 0 and "checks run on 4" in said and "vendi_score: not worked out (embeddings: cannot reach" in said
    ), err
    code, _, err = cli("eval", "--run", run_id, "--judge", "persona", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 1 and "cannot reach the LLM endpoint" in err


def test_a_judge_cannot_take_a_checks_name(cli: Cli, tmp_path: Path) -> None:
    recipe = tmp_path / "clash.toml"
    recipe.write_text(default().text.replace('name = "helpfulness"\nkind = "judge"', 'name = "echo"\nkind = "judge"'))
    code, _, err = cli("recipe", "check", str(recipe))
    assert code == 1 and "'echo' is a quality check's or another step's name" in err


def test_eval_says_which_judges_there_are(cli: Cli, run_id: str) -> None:
    code, _, err = cli("eval", "--run", run_id, "--judge", "fluency")
    assert code == 1 and "no judge step 'fluency'" in err and "there are: grounding, persona, helpfulness" in err
    code, _, err = cli("eval", "--run", "run_nope")
    assert code == 1 and "no run run_nope" in err


def test_an_inline_judge_scores_each_conversation_as_the_run_makes_it(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "judged.toml"
    text = default().text.replace(
        'name = "persona"\nkind = "judge"\n', 'name = "persona"\nkind = "judge"\ninline = true\n'
    )
    recipe.write_text(text.replace('name = "default"', 'name = "judged"'))
    code, out, err = cli(*RUN, "-n", "2", "--turns", "2", "--quiet", "--recipe", str(recipe))
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    names = rows(isolated_db, "SELECT check_name, count(*) FROM quality WHERE run_id = ? GROUP BY 1", [run])
    assert dict(names)["persona"] == 2 and "helpfulness" not in dict(names), "only the inline judge ran"


def test_diversity_figures_on_known_inputs() -> None:
    assert diversity.distinct(["a b a b"], 1).value == 0.5 and diversity.distinct(["a b a b"], 2).value == 2 / 3
    assert diversity.near_duplicate_rate(["one two three four five six"] * 3).value == 2 / 3
    # the Vendi score counts distinct items: three copies of one text and three of another are two
    sets = ([[1.0, 0.0]] * 4, [[1.0, 0.0, 0.0]] * 3 + [[0.0, 1.0, 0.0]] * 3, [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    vendi = [{f.metric: f.value for f in diversity.semantic(vectors)}["vendi_score"] for vectors in sets]
    assert vendi == pytest.approx([1.0, 2.0, 3.0]), vendi
    assert {f.metric: f.value for f in diversity.semantic(sets[2])}["embedding_distance"] == pytest.approx(1.0)
    personas = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]
    followed = diversity.semantic(personas, personas)[-1]
    assert followed.metric == "persona_similarity_correlation" and followed.value == pytest.approx(1.0)
    # llama-cpp-python's server without pooling answers a vector a token: averaged into one unit vector
    assert _pooled([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx([0.7071, 0.7071], abs=1e-4)


def test_a_run_without_checks_is_never_checked_until_eval_checks_it(
    cli: Cli, swarm_env: dict[str, str], isolated_db: Path, tmp_path: Path
) -> None:
    code, out, err = cli(*RUN, "-n", "2", "--turns", "2", "--quiet", "--no-checks")
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    assert rows(isolated_db, "SELECT count(*) FROM quality WHERE run_id = ?", [run]) == [(0,)]
    # a judge's score is not a check: the conversations stay unchecked, and export says so
    code, _, err = cli("eval", "--run", run, "--judge", "persona", "--no-checks", "--no-diversity")
    assert code == 0, err
    path = tmp_path / "out.jsonl"
    code, said, _ = cli("export", "--run", run, "--format", "openai", "-o", str(path))
    assert code == 0 and "2 not checked left out (swarm eval checks them" in " ".join(said.split())
    code, said, _ = cli("eval", "--run", run, "--no-diversity")
    assert code == 0 and "checks run on 2" in said
    code, said, _ = cli("export", "--run", run, "--format", "openai", "-o", str(path))
    assert code == 0 and "2 examples" in said
