"""The scheduler on its own (the web stubbed with fixed pages; the LLM is the real client on the test
server): gated task creation, skipping finished units, stopping with a grace period."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb

from agents.cycle import CycleConfig, PersonaView
from agents.llm import LLMClient, LLMSettings
from agents.reading import Page
from agents.swarm import Swarm, conversation_id
from storage import BatchWriter, Database
from tests.support.llm_server import LLMServer

PAGES = [Page("pg_1", "https://a.example/1", "Daytime sleep", "Blackout curtains help daytime sleep. " * 20)]


async def read(queries: list[str]) -> list[Page]:
    await asyncio.sleep(0.005)  # a crawl takes time; agents must overlap it with each other's LLM calls
    return PAGES


def personas(n: int) -> list[PersonaView]:
    return [PersonaView(f"p{i:04d}", f"Persona number {i}, who sleeps badly after night shifts.") for i in range(n)]


async def swarm_for(db: Path, server: LLMServer, n: int, **kwargs: object) -> tuple[Swarm, BatchWriter, LLMClient]:
    settings = LLMSettings(base_url=server.base_url, api_key="t", model="test-model", max_concurrency=8, timeout=5)
    writer = BatchWriter(Database(db), flush_interval=0.05, on_conflict={"conversations": "ignore"})
    llm = LLMClient(settings, Database(db), writer, run_id="run_s")
    swarm = Swarm("run_s", 1, llm, read, writer, personas(n), CycleConfig(turns=1), **kwargs)  # type: ignore[arg-type]
    return swarm, writer, llm


async def test_agents_are_gated_so_tasks_do_not_grow_with_the_personas(isolated_db: Path) -> None:
    with LLMServer(latency=0.002) as server:
        swarm, writer, llm = await swarm_for(isolated_db, server, 120, concurrency=4, cycles=1)
        peak_tasks = peak_active = 0

        async def watch() -> None:
            nonlocal peak_tasks, peak_active
            while True:
                peak_tasks = max(peak_tasks, len(asyncio.all_tasks()))
                peak_active = max(peak_active, swarm.progress.active)
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        status = await swarm.run()
        watcher.cancel()
        await llm.aclose()
        await writer.aflush()
        writer.close()
    assert status == "finished" and swarm.progress.units_ok == 120
    assert peak_active == 4, "exactly `concurrency` agents at a time"
    assert peak_tasks <= 4 + 8, f"{peak_tasks} tasks for 120 personas: work must be pulled, not created up front"


async def test_finished_units_are_skipped_and_their_next_question_carries_on(isolated_db: Path) -> None:
    with LLMServer() as server:
        finished = {("p0000", 0): "What about naps?", ("p0001", 0): None, ("p0001", 1): "x"}
        swarm, writer, llm = await swarm_for(isolated_db, server, 2, concurrency=2, cycles=2, finished=finished)
        status = await swarm.run()
        await llm.aclose()
        writer.close()
    assert status == "finished" and swarm.progress.units_skipped == 3 and swarm.progress.units_ok == 1
    con = duckdb.connect(str(isolated_db), read_only=True)
    made = con.execute("SELECT conversation_id, persona_id, cycle, queries FROM conversations").fetchall()
    con.close()
    assert made == [(conversation_id("run_s", "p0000", 1), "p0000", 1, '["What about naps?"]')]


async def test_a_stop_lets_units_in_flight_finish_and_starts_nothing_new(isolated_db: Path) -> None:
    with LLMServer(latency=0.05) as server:
        swarm, writer, llm = await swarm_for(isolated_db, server, 50, concurrency=3, cycles=1, grace=30)
        running = asyncio.create_task(swarm.run())
        while swarm.progress.units_ok < 3:
            await asyncio.sleep(0.01)
        swarm.stop()
        done_before, in_flight = swarm.progress.units_ok, swarm.progress.active
        status = await running
        await llm.aclose()
        writer.close()
    assert status == "interrupted"
    assert swarm.progress.personas_done < 50
    # whatever was in flight when asked to stop, finished (grace was long enough): nothing abandoned
    con = duckdb.connect(str(isolated_db), read_only=True)
    statuses = dict(con.execute("SELECT status, count(*) FROM run_units GROUP BY 1").fetchall())
    con.close()
    assert "abandoned" not in statuses and statuses["ok"] == swarm.progress.units_ok == done_before + in_flight
