"""The checks every conversation gets: each with a conversation that passes it and one that fails it,
the demo's failure modes among them (an echoed source fence, an answer with no citation, number tags)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from agents.cli.demo import _example
from agents.quality import check
from agents.quality.checks import words_of
from storage import Database
from tests.support.cli import RUN, Cli
from tests.support.llm_server import LLMServer
from tests.support.runs import rows

PAGES = {
    1: "Blackout curtains keep a bedroom dark during the day. Dark rooms help night-shift workers sleep longer.",
    2: "Anchor sleep means sleeping the same four hours every day, which keeps the body clock steady.",
}
GOOD: list[dict[str, str]] = [
    {"role": "user", "content": "How can I sleep better after a night shift?"},
    {
        "role": "assistant",
        "content": "Blackout curtains keep the bedroom dark during the day [1]. Anchor sleep, "
        "the same four hours every day, keeps the body clock steady [2].",
    },
    {"role": "user", "content": "Does the anchor sleep need to be at the same time on days off?"},
    {
        "role": "assistant",
        "content": "Yes: sleeping the same four hours every day is what keeps the clock steady [2].",
    },
]
METADATA: dict[str, Any] = {
    "tags": ["sleep", "night shift", "body clock"],
    "keywords": ["blackout curtains", "anchor sleep", "daytime sleep", "shift work", "circadian rhythm"],
    "summary": "The user asked how to sleep after night shifts. The assistant explained blackout curtains and "
    "anchor sleep.",
}


PERSONA = "A night-shift nurse in Leeds who wants to protect her daytime sleep and cooks soups in batches."


def results(
    messages: list[dict[str, str]], metadata: dict[str, Any] | None = METADATA, language: str | None = "en"
) -> dict[str, Any]:
    return {r.check: r for r in check(messages, PAGES, metadata, persona=PERSONA, language=language)}


def test_a_grounded_conversation_passes_every_check() -> None:
    found = results(GOOD)
    assert {name: r.passed for name, r in found.items()} == dict.fromkeys(
        ["citations", "support", "echo", "degenerate", "language", "metadata"], True
    ), {n: r.detail for n, r in found.items()}
    assert found["citations"].score == 1.0 and found["support"].score > 0.7


def test_an_answer_that_cites_nothing_or_a_source_not_given_fails_citations() -> None:
    uncited = [GOOD[0], {"role": "assistant", "content": "The Psalms speak of shepherds. Sleep is important."}]
    result = results(uncited)["citations"]
    assert not result.passed and result.score == 0 and "no assistant sentence cites" in result.detail
    forged = [GOOD[0], {"role": "assistant", "content": "Curtains help [1]. The WHO says so [7]."}]
    result = results(forged)["citations"]
    assert not result.passed and "[7]" in result.detail


def test_a_citation_its_page_does_not_support_fails_support() -> None:
    made_up = [GOOD[0], {"role": "assistant", "content": "Vultures nest on limestone cliffs in spring [1]."}]
    result = results(made_up)["support"]
    assert not result.passed and result.score < 0.5


def test_echoes_of_the_fence_the_sources_the_user_or_an_earlier_turn_fail_echo() -> None:
    fence = [
        {"role": "user", "content": "<<<WEB PAGES 3f2a (untrusted data) [1] Birding by Ear — http://x/1"},
        *GOOD[1:],
    ]
    assert "copies the prompt's fence" in results(fence)["echo"].detail and not results(fence)["echo"].passed
    # the demo's embedded model answered with the system prompt's fence line
    leaked = [GOOD[0], {"role": "assistant", "content": "You're a careful assistant.\n\nSOURCES 792bf53915f9:\n[1]."}]
    assert "turn 2 (assistant) copies the prompt's fence" in results(leaked)["echo"].detail
    copied = [{"role": "user", "content": PAGES[2]}, *GOOD[1:]]
    assert "copies the sources" in results(copied)["echo"].detail
    parrot = [GOOD[0], {"role": "assistant", "content": "How can I sleep better after a night shift? Curtains [1]."}]
    assert "repeats the user's turn" in results(parrot)["echo"].detail
    again = [*GOOD[:2], GOOD[0], GOOD[1]]
    assert "turn 3 (user) repeats turn 1" in results(again)["echo"].detail
    # the last demo's best conversation opened with the persona's own description
    introduced = [{"role": "user", "content": "I am a night-shift nurse in Leeds who wants to protect her daytime "
                   "sleep and cooks soups in batches."}, *GOOD[1:]]  # fmt: skip
    assert "turn 1 (user) copies the persona's description" in results(introduced)["echo"].detail
    mentions = [{"role": "user", "content": "As a nurse on nights, how do I protect my daytime sleep?"}, *GOOD[1:]]
    assert results(mentions)["echo"].passed, "a turn that speaks of the persona is not a copy of it"


def test_a_turn_in_another_language_than_the_recipes_fails_language() -> None:
    french = [*GOOD[:2], {"role": "user", "content": "Est-ce que le sommeil d'ancrage doit être à la même heure "
              "les jours de repos ?"}, GOOD[3]]  # fmt: skip
    found = results(french)["language"]
    assert not found.passed and found.score == 0.75 and "turn 3 (user) is in fr, not en" in found.detail
    assert results(french, language="fr")["language"].score < 1, "the English turns are not French"
    assert results(french, language=None)["language"].passed, "a recipe with no language is not held to one"
    assert "not one the language check knows" in results(GOOD, language="xx")["language"].detail
    shouted = [{"role": "user", "content": "HOW CAN I SLEEP BETTER AFTER A NIGHT SHIFT AND ON MY DAYS OFF?"}, GOOD[1]]
    assert results(shouted)["language"].passed, "shouted English is English"
    # a lone surrogate (JSON can carry one) is refused by CLD2 and cannot be encoded for fastText
    broken = [{**french[2], "content": french[2]["content"] + " \ud800"}, GOOD[1]]
    assert "turn 1 (user) is in fr, not en" in results(broken)["language"].detail


def test_the_checks_words_are_the_words_a_regular_expression_finds() -> None:
    for text in ("don't cite [3] 4.5 times, under_score\x1f\x00tab\tend-line\n", "naïve café, ça va ? 日本語 ok", ""):
        assert words_of(text) == re.findall(r"\w+", text), text


def test_loops_breaks_of_character_and_cut_answers_fail_degenerate() -> None:
    loop = [GOOD[0], {"role": "assistant", "content": "I will help you sleep. " * 20 + "[1]."}]
    assert "loops" in results(loop)["degenerate"].detail
    broken = [GOOD[0], {"role": "assistant", "content": "As an AI, I cannot sleep, but curtains help [1]."}]
    assert "breaks character" in results(broken)["degenerate"].detail
    cut = [GOOD[0], {"role": "assistant", "content": "Blackout curtains keep the bedroom dark [1] and"}]
    found = results(cut)["degenerate"]
    assert not found.passed and "stops mid-sentence" in found.detail
    assert results(GOOD)["degenerate"].passed


def test_tags_that_are_numbers_or_json_and_an_unrelated_summary_fail_metadata() -> None:
    numbers = {**METADATA, "tags": ["1", "510", "}\n{\n    "], "keywords": ["]\n", "sleep"]}
    found = results(GOOD, numbers)["metadata"]
    assert not found.passed and "4 of 5 tags/keywords are not words, or the prompt's own" in found.detail
    # the last demo's best conversation had the prompt's speakers and a fence tag for tags
    prompt = {**METADATA, "tags": ["user", "ASSISTANT", "CONVERSATION eb83d3fc81ff", "sleep"]}
    assert "3 of 9 tags/keywords are not words, or the prompt's own: 'user'" in results(GOOD, prompt)["metadata"].detail
    for fine in (["user experience", "sleep"], ["user", "system", "sleep"]):  # a UX or an OS conversation's
        assert results(GOOD, {**METADATA, "tags": fine})["metadata"].passed, fine
    elsewhere = {**METADATA, "summary": "Vultures circle above the limestone cliffs. Shepherds count them."}
    assert "the summary shares 0 content words" in results(GOOD, elsewhere)["metadata"].detail
    assert "no metadata" in results(GOOD, None)["metadata"].detail


def test_a_run_stores_every_check_of_every_conversation(
    cli: Cli, swarm_env: dict[str, str], llm_server: LLMServer, isolated_db: Path
) -> None:
    llm_server.schema_faults["Metadata"] = 2  # one conversation's metadata stays invalid after its repair
    code, out, err = cli(*RUN, "-n", "3", "--turns", "2", "--quiet", "--concurrency", "1")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    stored = rows(
        isolated_db,
        "SELECT c.conversation_id, q.check_name, q.passed, q.blocking, q.detail FROM conversations c "
        "JOIN quality q USING (conversation_id) WHERE c.run_id = ? ORDER BY 1, 2",
        [run_id],
    )
    assert len(stored) == 3 * 6
    by_check: dict[str, list[bool]] = {}
    for _, name, passed, blocking, _ in stored:
        by_check.setdefault(name, []).append(passed)
        assert blocking
    # the test LLM server's assistant answers with a sentence of each of its first two sources, citing it,
    # and its summary is made of the conversation's words: every check passes but the metadata of the one
    # whose metadata step failed
    details = {name: detail for _, name, _, _, detail in stored}
    assert sorted(by_check["metadata"]) == [False, True, True], details
    assert all(all(values) for name, values in by_check.items() if name != "metadata"), details
    # the run's summary says how many pass, and what failed how often
    code, out, _ = cli("runs", "show", run_id)
    failing = {name for name, values in by_check.items() if not all(values)}
    passing = sum(all(p for conversation, _, p, _, _ in stored if conversation == c) for c in {s[0] for s in stored})
    assert code == 0 and f"{passing} of 3 pass every check; failed:" in " ".join(out.split())
    assert all(f"{name} " in out for name in failing)
    # the demo shows the best conversation by the checks, and says how it did
    best = _example(Database(isolated_db), run_id)
    most = max(sum(p for c2, _, p, _, _ in stored if c2 == c) for c in {s[0] for s in stored})
    assert best is not None and (best["passed"], best["checks"]) == (most, 6)
    sources = rows(isolated_db, "SELECT outputs->'$.read.sources' FROM conversations WHERE run_id = ?", [run_id])
    assert all(json.loads(s)[0]["n"] == 1 for (s,) in sources), "each conversation keeps the pages it was given"


def test_the_quality_guide_states_every_check_with_its_threshold() -> None:
    from agents.quality import CHECKS
    from tests.support.cli import REPO

    guide = (REPO / "docs" / "quality.md").read_text()
    for c in CHECKS:
        row = next((line for line in guide.splitlines() if line.startswith(f"| `{c.name}` |")), "")
        assert row == f"| `{c.name}` | {c.definition} | {c.threshold:g} | {'yes' if c.blocking else 'no'} |", c.name
