"""What one cycle makes (Conversation, a `conversations` row) and the run-wide sizes it is made with
(CycleConfig). The steps that fill a Conversation are in agents/steps; their order, in a recipe."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from agents.quality.checks import Result
from storage.sql import new_id


@dataclass
class CycleConfig:
    """The run's sizes: a recipe's step takes its own value where it sets one, these where it does not."""

    turns: int = 4  # user turns at most
    pages: int = 5  # pages read per cycle
    source_chars: int = 8_000  # text of the chunks given to the model (about 2,000 tokens)
    context_chars: int = 24_000  # the whole prompt kept within about 6,000 tokens
    variations: int = 0  # rephrased prompt/response pairs to add (0 = none)
    answer_tokens: int = 700  # an assistant answer's budget; a longer one is cut at its last full sentence
    checks: bool = True  # the quality checks after each conversation (agents/quality)


@dataclass
class Conversation:
    persona_id: str
    cycle: int
    queries: list[str]
    messages: list[dict[str, str]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None  # the output of a step named `metadata`, also in `outputs`
    termination_reason: str = ""
    variations: list[dict[str, Any]] = field(default_factory=list)
    prompt_versions: list[str] = field(default_factory=list)
    conversation_id: str = field(default_factory=lambda: new_id("cv"))
    failed_steps: dict[str, dict[str, str]] = field(default_factory=dict)  # step → {reason, detail}
    outputs: dict[str, Any] = field(default_factory=dict)  # step name → what it produced
    next_question: str | None = None  # what the next cycle searches for
    recipe_hash: str | None = None
    quality: list[Result] = field(default_factory=list)  # the checks' results (the `quality` table's rows)

    @property
    def status(self) -> str:
        """complete, or partial: the turns exist and a later step (metadata, variations …) failed."""
        return "partial" if self.failed_steps else "complete"

    @property
    def next_queries(self) -> list[str]:
        return [self.next_question] if self.next_question else []

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Conversation:
        """A stored `conversations` row (JSON columns as DuckDB returns them: text)."""

        def parsed(key: str, empty: Any) -> Any:
            value = row.get(key)
            return json.loads(value) if isinstance(value, str) else (value if value is not None else empty)

        return cls(
            persona_id=row["persona_id"],
            cycle=int(row["cycle"]),
            queries=parsed("queries", []),
            messages=parsed("messages", []),
            sources=parsed("sources", []),
            metadata=parsed("metadata", None),
            termination_reason=row["termination_reason"] or "",
            variations=parsed("variations", []),
            prompt_versions=parsed("prompt_versions", []),
            conversation_id=row["conversation_id"],
            failed_steps=parsed("failed_steps", {}),
            outputs=parsed("outputs", {}),
            next_question=row.get("next_question"),
            recipe_hash=row.get("recipe_hash"),
        )

    def row(self, run_id: str | None) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "run_id": run_id,
            "persona_id": self.persona_id,
            "cycle": self.cycle,
            "messages": self.messages,
            "sources": self.sources,
            "metadata": self.metadata,
            "queries": self.queries,
            "termination_reason": self.termination_reason,
            "variations": self.variations or None,
            "prompt_versions": self.prompt_versions,
            "status": self.status,
            "failed_steps": self.failed_steps or None,
            "outputs": self.outputs or None,
            "next_question": self.next_question,
            "recipe_hash": self.recipe_hash,
            "created_at": dt.datetime.now(dt.UTC),
        }
