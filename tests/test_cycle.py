"""One persona's prompt cycle against the local OpenAI-compatible server. The crawler is stubbed here
(a fixed set of pages): this tests the cycle itself, not the web."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from agents.cycle import CycleConfig, CycleFailed, PersonaView, run_cycle
from agents.llm import LLMClient, LLMSettings
from agents.reading import Page, bm25, chunks, select, words
from agents.recipes import default
from storage import BatchWriter, Database
from tests.support.llm_server import LLMServer

PERSONA = "A night-shift nurse in Leeds who wants to protect her daytime sleep and cooks soups in batches."
PAGES = [
    Page(
        "pg_1",
        "https://a.example/sleep",
        "Daytime sleep after night shifts",
        "Blackout curtains and a cool room help daytime sleep.\nAnchor sleep keeps the body clock steady.",
    ),
    Page(
        "pg_2",
        "https://b.example/soup",
        "Batch cooking soups",
        "Lentil soup freezes well.\nCook on your day off and portion it.",
    ),
    Page("pg_3", "https://c.example/cars", "Car engines", "Pistons move up and down in the cylinders."),
]


async def stub_reader(queries: list[str]) -> list[Page]:
    stub_reader.calls.append(queries)  # type: ignore[attr-defined]
    return PAGES


stub_reader.calls = []  # type: ignore[attr-defined]


async def cycle(db_path: Path, server: LLMServer, **kwargs: Any) -> Any:
    db = Database(db_path)
    settings = LLMSettings(base_url=server.base_url, api_key="t", model="test-model", backoff_base=0.01, timeout=5)
    with BatchWriter(db, flush_interval=0.05) as writer:
        client = LLMClient(settings, db, writer, run_id="run_t")
        try:
            conversation = await run_cycle(client, PersonaView("p_1", PERSONA), stub_reader, CycleConfig(**kwargs))
            writer.submit("conversations", conversation.row("run_t"))
        finally:
            await client.aclose()
    return conversation


async def test_a_cycle_makes_a_grounded_conversation_with_valid_metadata(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    conversation = await cycle(isolated_db, llm_server, turns=3)
    roles = [m["role"] for m in conversation.messages]
    assert roles == ["user", "assistant"] * 3 and conversation.termination_reason == "turns_reached"
    assert {s["page_id"] for s in conversation.sources} <= {p.page_id for p in PAGES} and conversation.sources
    assert [s["n"] for s in conversation.sources] == [1, 2]
    metadata = next(s for s in default().steps if s.name == "metadata").prompts[""].schema
    metadata.model_validate(conversation.metadata)
    assert conversation.outputs["metadata"] == conversation.metadata
    steps = [v.split("@")[0] for v in conversation.prompt_versions]
    assert steps == ["conversation.assistant", "conversation.user", "interests", "metadata"]
    assert conversation.next_queries == [conversation.metadata["next_question"]] == [conversation.outputs["next"]]
    # what the models were told: web text is delimited and marked untrusted; the simulator speaks as the persona
    systems = [
        r["body"]["messages"][0]["content"] for r in llm_server.requests if r["body"]["messages"][0]["role"] == "system"
    ]
    assert systems and all("untrusted" in s for s in systems)
    simulator = [r["body"]["messages"][-1]["content"] for r in llm_server.requests if "Role-play" in str(r["body"])]
    assert len(simulator) == 3 and all(PERSONA in s and "untrusted" in s for s in simulator)
    assert "USER: " in simulator[-1] and "ASSISTANT: " in simulator[-1], "the simulator sees the conversation so far"
    con = duckdb.connect(str(isolated_db), read_only=True)
    stored = con.execute("SELECT messages, sources, termination_reason FROM conversations").fetchall()
    purposes = dict(con.execute("SELECT purpose, count(*) FROM llm_calls GROUP BY 1").fetchall())
    con.close()
    assert len(json.loads(stored[0][0])) == 6 and stored[0][2] == "turns_reached"
    assert purposes == {"interests": 1, "conversation.user": 3, "conversation.assistant": 3, "metadata": 1}


async def test_the_persona_can_stop_early(llm_server: LLMServer, isolated_db: Path) -> None:
    llm_server.overrides["done"] = True
    conversation = await cycle(isolated_db, llm_server, turns=4)
    assert conversation.termination_reason == "persona_done"
    assert [m["role"] for m in conversation.messages] == ["user", "assistant"], "the first question is always asked"


async def test_context_budget_ends_the_conversation(llm_server: LLMServer, isolated_db: Path) -> None:
    conversation = await cycle(isolated_db, llm_server, turns=10, context_chars=600)
    assert conversation.termination_reason == "context_full" and len(conversation.messages) < 20


async def test_no_pages_is_a_failure_with_a_reason(llm_server: LLMServer, isolated_db: Path) -> None:
    async def nothing(queries: list[str]) -> list[Page]:
        return []

    db = Database(isolated_db)
    with BatchWriter(db) as writer:
        client = LLMClient(LLMSettings(base_url=llm_server.base_url, api_key="t", model="m"), db, writer)
        with pytest.raises(CycleFailed) as info:
            await run_cycle(client, PersonaView("p", PERSONA), nothing, CycleConfig())
        await client.aclose()
    assert info.value.reason == "no_pages"


def test_reading_ranks_relevant_pages_first_and_chunks_fit_the_budget() -> None:
    ranked = select(PAGES, ["daytime sleep", "night shift", "soup"], k=2)
    assert [p.page_id for p in ranked] == ["pg_1", "pg_2"]
    assert bm25(words("engine pistons"), [words(p.text) for p in PAGES])[2] > 0
    parts = chunks(PAGES, budget_chars=120, chunk_chars=60)
    assert sum(len(c.text) for c in parts) <= 120 and [c.number for c in parts] == list(range(1, len(parts) + 1))
    assert len({c.page.page_id for c in parts}) > 1, "chunks are taken across pages, not all from the first"


async def test_end_to_end_with_the_real_crawler_two_cycles_and_variations(
    llm_server: LLMServer, website: Any, isolated_db: Path
) -> None:
    from agents.cycle import run_persona
    from agents.reader import WebReader
    from crawler import CrawlSettings
    from crawler.search import SearXNG

    website.robots = "User-agent: *\nAllow: /\n"
    llm_server.faults.clear()
    db = Database(isolated_db)
    crawl_settings = CrawlSettings(allowed_networks=("127.0.0.0/8",), host_rate=0, render="never", extract_workers=1)
    llm_settings = LLMSettings(base_url=llm_server.base_url, api_key="t", model="test-model", timeout=5)
    search = SearXNG(website.base, rate=0)
    with BatchWriter(db, flush_interval=0.05) as writer:
        client = LLMClient(llm_settings, db, writer, run_id="run_e2e")
        reader = WebReader(crawl_settings, writer, search=search, results_per_query=2, run_id="run_e2e")
        try:
            conversations = await run_persona(
                client, PersonaView("p_1", PERSONA), reader, CycleConfig(turns=2, variations=2), cycles=2
            )
            for conversation in conversations:
                writer.submit("conversations", conversation.row("run_e2e"))
        finally:
            await client.aclose()
            await search.aclose()
            await reader.aclose()
    assert [c.cycle for c in conversations] == [0, 1]
    assert conversations[1].queries == [conversations[0].metadata["next_question"]], "cycle 2 follows cycle 1"
    searched = [r.path for r in website.log if r.path.startswith("/search")]
    assert len(searched) == 3 + 1, "three interest queries, then the predicted next question"
    assert [(len(c.messages), len(c.variations)) for c in conversations] == [(4, 2), (4, 2)]
    con = duckdb.connect(str(isolated_db), read_only=True)
    unresolved = con.execute(
        "SELECT count(*) FROM (SELECT unnest(json_extract_string(sources, '$[*].page_id')) AS page_id "
        "FROM conversations) s WHERE page_id NOT IN (SELECT page_id FROM pages WHERE error IS NULL)"
    ).fetchone()
    cited = con.execute("SELECT sum(json_array_length(sources)) FROM conversations").fetchone()
    con.close()
    assert cited[0] >= 2 and unresolved == (0,), "every citation resolves to a stored page"
