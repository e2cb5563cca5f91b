"""Runs as rows: the `runs` table (config, status, heartbeat, counts), the personas a run selected
(`run_personas`, what `--resume` works through) and each unit attempt (`run_units`).

Counts in `runs` are never kept by hand: at every heartbeat and at the end they are re-read from the
tables themselves (conversations, run_units, pages, llm_calls), so they always match what a user's SQL
finds. A run whose process died (kill -9, power loss) still says `running`; `status_of` shows it as
`stale` once its process is gone or its heartbeat is old, and `--resume` takes it over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

from agents.llm.settings import LLMSettings
from agents.quality import CHECKS
from agents.recipes import Recipe, default, parse
from agents.recipes.templates import PersonaView
from crawler.settings import CrawlSettings
from storage import Database
from storage.errors import DatabaseMissing, SwarmError
from storage.sql import fetch_dicts, new_id

HEARTBEAT_S = 5.0  # how often a running process updates its row


class UnitReason(StrEnum):
    """`run_units.reason` of a unit that did not make a conversation, besides an LLM call's status
    (agents.llm.errors.Status) and `search_<reason>` (crawler.search.base.SearchReason)."""

    NO_PAGES = "no_pages"  # nothing readable was found for the persona's queries
    PREVIOUS_CYCLE_FAILED = "previous_cycle_failed"  # held back: the cycle before it failed
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C or SIGTERM before it finished (status abandoned)
    INTERNAL_ERROR = "internal_error"  # a fault of ours; the detail has the exception
    TEMPLATE_ERROR = "template_error"  # a recipe template could not render for this persona (a missing attribute)


PREVIOUS_FAILED = UnitReason.PREVIOUS_CYCLE_FAILED
STALE_AFTER_S = 60.0  # a `running` row not updated for this long belongs to a dead process


class RunError(SwarmError):
    """A run cannot start or resume; the message says what to do."""


@dataclass
class RunConfig:
    """Everything that shapes a run's output; stored in `runs.config` and reused by --resume."""

    where: str | None = None
    n: int = 8
    seed: int = 0
    stratify_by: str | None = None
    concurrency: int = 16
    turns: int = 4
    cycles: int = 1
    pages: int = 5
    variations: int = 0
    source_chars: int | None = None  # page text given to the model per cycle; None: sized to the model
    context_chars: int | None = None  # the whole prompt kept within this; None: sized to the model
    answer_tokens: int | None = None  # an assistant answer's budget; None: sized to the model
    search: str | None = None
    results_per_query: int = 5
    search_rate: float = 1.0  # searches per second (0 = unlimited: your own SearXNG)
    search_concurrency: int = 1  # searches in flight at once
    urls: list[str] = field(default_factory=list)
    # the crawler's and the LLM layer's own defaults, named once there
    depth: int = CrawlSettings.depth
    allow_private: bool = CrawlSettings.allow_private
    host_rate: float = CrawlSettings.host_rate
    host_concurrency: int = CrawlSettings.host_concurrency
    render: str = CrawlSettings.render
    base_url: str | None = None  # None: OPENAI_BASE_URL, or the embedded local model when that is unset too
    model: str | None = None
    llm_concurrency: int = LLMSettings.max_concurrency
    grace: float = 20.0  # seconds in-flight units get to finish after a first Ctrl-C
    recipe: str | None = None  # the recipe as given (a bundled name or a file); its text is in runs.recipe
    checks: bool = True  # the quality checks after each conversation (swarm eval runs them later otherwise)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> RunConfig:
        return cls(**{k: v for k, v in stored.items() if k in cls.__dataclass_fields__})


def new_run_id() -> str:
    return new_id("run", timed=True)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status_of(row: dict[str, Any]) -> str:
    """The status a user should see: `running` only while a live process says so."""
    if row["status"] != "running":
        return str(row["status"])
    if row.get("hostname") == socket.gethostname():
        # on this machine the process itself says: alive is running, however long its heartbeat has
        # been held up (a writer waiting out a long `swarm export` on the file skips heartbeats)
        return "running" if _alive(row.get("pid")) else "stale"
    updated = row.get("updated_at") or row.get("started_at")
    old = updated is not None and (_now() - updated).total_seconds() > STALE_AFTER_S
    return "stale" if old else "running"


class RunStore:
    def __init__(self, db: Database):
        self.db = db

    # -- starting ---------------------------------------------------------------------------------
    def create(self, run_id: str, config: RunConfig, persona_ids: list[str], recipe: Recipe | None = None) -> None:
        recipe = recipe or default()
        with self.db.write() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                # pid and host already: a row left by a Ctrl-C right after this is seen as stale at once
                "INSERT INTO runs (run_id, status, config, started_at, updated_at, personas, sessions, elapsed_s, "
                "pid, hostname, recipe, recipe_hash) VALUES (?, 'running', ?, now(), now(), ?, 0, 0, ?, ?, ?, ?)",
                [
                    run_id,
                    config.to_json(),
                    len(persona_ids),
                    os.getpid(),
                    socket.gethostname(),
                    recipe.text,
                    recipe.hash,
                ],
            )
            selected = pa.table(
                {
                    "run_id": pa.array([run_id] * len(persona_ids), pa.string()),
                    "position": pa.array(range(len(persona_ids)), pa.int32()),
                    "persona_id": pa.array(persona_ids, pa.string()),
                }
            )
            con.register("_selected", selected)
            con.execute("INSERT INTO run_personas BY NAME SELECT * FROM _selected")
            con.unregister("_selected")
            con.execute("COMMIT")

    def begin_session(self, run_id: str, after: int = 0) -> int:
        """Claim the run for this process; returns the session number (1 first).

        `after` is the session count the caller saw: if another process claimed the run since (two
        `--resume` of one stale run at once), the update matches nothing and this one backs off."""
        with self.db.write() as con:
            (claimed,) = con.execute(
                "UPDATE runs SET status = 'running', sessions = coalesce(sessions, 0) + 1, pid = ?, hostname = ?, "
                "updated_at = now(), error = NULL WHERE run_id = ? AND coalesce(sessions, 0) = ?",
                [os.getpid(), socket.gethostname(), run_id, after],
            ).fetchone() or (0,)
        if not claimed:
            raise RunError(f"run {run_id} was just resumed by another process: see swarm runs show {run_id}")
        return after + 1

    # -- while running ------------------------------------------------------------------------------
    def heartbeat(self, run_id: str, session: int, elapsed_s: float) -> bool:
        """Refresh the row; False when another process has claimed the run since (this one should stop)."""
        with self.db.write() as con:
            (ours,) = con.execute(
                "UPDATE runs SET updated_at = now(), elapsed_s = ? WHERE run_id = ? AND sessions = ?",
                [round(elapsed_s, 3), run_id, session],
            ).fetchone() or (0,)
            if ours:
                self._update_counts(con, run_id)
        return bool(ours)

    def finish(
        self, run_id: str, session: int, status: str, elapsed_s: float, error: str | None = None
    ) -> dict[str, Any]:
        """The run's final status, written only while this session still owns the run."""
        with self.db.write() as con:
            (ours,) = con.execute(
                "UPDATE runs SET status = ?, finished_at = now(), updated_at = now(), elapsed_s = ?, error = ? "
                "WHERE run_id = ? AND sessions = ?",
                [status, round(elapsed_s, 3), error, run_id, session],
            ).fetchone() or (0,)
            if ours:
                self._update_counts(con, run_id)
        record = self.get(run_id)
        assert record is not None
        return record

    def refresh_counts(self, run_id: str) -> None:
        """Count the run's work again (after `swarm eval` scored it)."""
        with self.db.write() as con:
            self._update_counts(con, run_id)

    def _update_counts(self, con: Any, run_id: str) -> None:
        counts = count_tables(con, run_id)
        con.execute(
            "UPDATE runs SET counts = ?, conversations = ?, failed_units = ?, pages_ok = ?, pages_failed = ?, "
            "llm_calls = ?, prompt_tokens = ?, completion_tokens = ?, cost_usd = ? WHERE run_id = ?",
            [
                json.dumps(counts),
                counts["conversations"],
                counts["units_failed"],
                counts["pages_ok"],
                counts["pages_failed"],
                counts["llm_calls"],
                counts["prompt_tokens"],
                counts["completion_tokens"],
                counts["cost_usd"],
                run_id,
            ],
        )

    # -- reading --------------------------------------------------------------------------------------
    def get(self, run_id: str) -> dict[str, Any] | None:
        try:
            with self.db.read() as con:
                found = fetch_dicts(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        except DatabaseMissing:
            return None
        if not found:
            return None
        record = found[0]
        for key in ("config", "counts"):
            record[key] = json.loads(record[key]) if record[key] else {}
        return record

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.db.read() as con:
            rows = fetch_dicts(con.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", [limit]))
        for record in rows:
            record["counts"] = json.loads(record["counts"]) if record["counts"] else {}
        return rows

    def personas(self, run_id: str) -> list[PersonaView]:
        """The run's selection, in order."""
        with self.db.read() as con:
            return [
                PersonaView(str(pid), str(text), json.loads(attributes) if attributes else {})
                for pid, text, attributes in con.execute(
                    "SELECT r.persona_id, p.text, CAST(p.attributes AS VARCHAR) FROM run_personas r "
                    "JOIN personas p USING (persona_id) WHERE r.run_id = ? ORDER BY r.position",
                    [run_id],
                ).fetchall()
            ]

    @staticmethod
    def recipe(record: dict[str, Any]) -> Recipe:
        """The recipe a run follows: its stored text (a run from before recipes followed the default)."""
        text = record.get("recipe")
        return parse(text, f"run {record['run_id']}") if text else default()

    def failed_attempts(self, run_id: str) -> dict[tuple[str, int], int]:
        """(persona_id, cycle) → how many times the unit itself failed (not counting units held back by
        an earlier cycle's failure, nor units abandoned by a stop)."""
        with self.db.read() as con:
            rows = con.execute(
                "SELECT persona_id, cycle, count(*) FROM run_units WHERE run_id = ? AND status = 'failed' "
                "AND reason <> ? GROUP BY ALL",
                [run_id, PREVIOUS_FAILED],
            ).fetchall()
        return {(str(pid), int(cycle)): int(n) for pid, cycle, n in rows}

    def finished_units(self, run_id: str) -> dict[tuple[str, int], str | None]:
        """(persona_id, cycle) → the next question it predicted, for every unit with a complete conversation
        (a partial one is not finished: see partial_units)."""
        with self.db.read() as con:
            rows = con.execute(
                "SELECT persona_id, cycle, next_question FROM conversations "
                "WHERE run_id = ? AND coalesce(status, 'complete') = 'complete'",
                [run_id],
            ).fetchall()
        return {(str(pid), int(cycle)): question for pid, cycle, question in rows}

    def partial_units(self, run_id: str) -> list[dict[str, Any]]:
        """The stored conversations of this run whose late steps failed, each as its row."""
        with self.db.read() as con:
            return fetch_dicts(
                con.execute("SELECT * FROM conversations WHERE run_id = ? AND status = 'partial'", [run_id])
            )


def _distribution(n: int, mean: float, quartiles: list[float], passed: int) -> dict[str, Any]:
    return {"n": int(n), "mean": round(float(mean), 3), "quartiles": [round(float(q), 3) for q in quartiles],
            "passed": int(passed)}  # fmt: skip


def count_tables(con: Any, run_id: str) -> dict[str, Any]:
    """A run's counts, read from the tables that hold its work."""

    def one(sql: str) -> tuple[Any, ...]:
        row = con.execute(sql, [run_id]).fetchone()
        return tuple(row) if row else ()

    personas = one("SELECT count(*) FROM run_personas WHERE run_id = ?")[0]
    conversations, personas_with, partial = one(
        "SELECT count(*), count(DISTINCT persona_id), count(*) FILTER (WHERE status = 'partial') "
        "FROM conversations WHERE run_id = ?"
    )
    failed_by = dict(
        con.execute(
            "SELECT reason, count(*) FROM (SELECT persona_id, cycle, arg_max(status, finished_at) AS status, "
            "arg_max(reason, finished_at) AS reason FROM run_units WHERE run_id = ? GROUP BY persona_id, cycle) u "
            "WHERE status = 'failed' AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.run_id = ? "
            "AND c.persona_id = u.persona_id AND c.cycle = u.cycle) GROUP BY reason ORDER BY 2 DESC",
            [run_id, run_id],
        ).fetchall()
    )
    pages_ok, pages_failed = one(
        "SELECT count(*) FILTER (WHERE error IS NULL), count(*) FILTER (WHERE error IS NOT NULL) FROM pages "
        "WHERE run_id = ?"
    )
    page_errors = dict(
        con.execute(
            "SELECT error, count(*) FROM pages WHERE run_id = ? AND error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC",
            [run_id],
        ).fetchall()
    )
    calls, cached, prompt, completion, cost = one(
        "SELECT count(*), count(*) FILTER (WHERE cached), coalesce(sum(prompt_tokens), 0), "
        "coalesce(sum(completion_tokens), 0), coalesce(sum(cost_usd), 0) FROM llm_calls WHERE run_id = ?"
    )
    llm_errors = dict(
        con.execute(
            "SELECT status, count(*) FROM llm_calls WHERE run_id = ? AND status <> 'ok' GROUP BY 1 ORDER BY 2 DESC",
            [run_id],
        ).fetchall()
    )
    names = [c.name for c in CHECKS]
    checks = con.execute(
        "SELECT check_name, count(*) FILTER (WHERE NOT passed) FROM quality WHERE run_id = ? AND blocking "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        [run_id],
    ).fetchall()
    # the judges' scores (every name that is not one of the checks), as distributions
    judged = con.execute(
        "SELECT check_name, count(*), avg(score), quantile_cont(score, [0.25, 0.5, 0.75]), "
        "count(*) FILTER (WHERE passed) FROM quality WHERE run_id = ? AND NOT list_contains(?, check_name) "
        "GROUP BY 1 ORDER BY 1",
        [run_id, names],
    ).fetchall()
    figures = con.execute(
        "SELECT metric, value FROM run_metrics WHERE run_id = ? AND stratum = '' ORDER BY metric", [run_id]
    ).fetchall()
    # complete, every check run on it (see swarm eval), and no blocking one failed: what swarm export writes
    passing = con.execute(
        "SELECT count(*) FROM conversations c WHERE run_id = ? AND coalesce(status, 'complete') = 'complete' "
        "AND NOT EXISTS (SELECT 1 FROM quality q WHERE q.conversation_id = c.conversation_id AND q.blocking "
        "AND NOT q.passed) AND (SELECT count(DISTINCT check_name) FROM quality q WHERE q.conversation_id = "
        "c.conversation_id AND list_contains(?, q.check_name)) = ?",
        [run_id, names, len(names)],
    ).fetchone()[0]
    return {
        "personas": int(personas),
        "personas_with_conversations": int(personas_with),
        # complete, and passing every blocking quality check (docs/quality.md)
        "conversations_passing": int(passing),
        "quality_failed_by_check": {str(k): int(v) for k, v in checks},
        "judge_scores": {str(name): _distribution(n, mean, qs, passed) for name, n, mean, qs, passed in judged},
        "diversity": {str(metric): (None if value is None else round(float(value), 4)) for metric, value in figures},
        "conversations": int(conversations),
        "conversations_partial": int(partial),  # kept with a failed late step; --resume completes them
        "units_failed": int(sum(failed_by.values())),
        "units_failed_by_reason": {str(k): int(v) for k, v in failed_by.items()},
        "pages_ok": int(pages_ok),
        "pages_failed": int(pages_failed),
        "pages_failed_by_reason": {str(k): int(v) for k, v in page_errors.items()},
        "llm_calls": int(calls),
        "llm_calls_cached": int(cached),
        "llm_calls_failed_by_reason": {str(k): int(v) for k, v in llm_errors.items()},
        "prompt_tokens": int(prompt),
        "completion_tokens": int(completion),
        "cost_usd": round(float(cost), 6),
    }
