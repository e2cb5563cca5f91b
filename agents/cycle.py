"""One prompt cycle of one persona: interests → reading → conversation → metadata → next queries.

The persona's agent works out what it would follow (structured), reads the pages found for those
queries (most relevant first, chunked to fit), then a user simulator speaks as the persona about what
it read while an assistant answers from the numbered chunks and cites them; finally the conversation
is described with validated metadata, whose predicted next question seeds the next cycle.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agents import fence, prompts, reading
from agents.llm import LLMClient
from agents.llm.errors import LLMOutputError
from agents.runs import UnitReason
from agents.schemas import Interests, Metadata, UserTurn, Variation, variations_of
from storage.sql import new_id

Reader = Callable[[list[str]], Awaitable[list[reading.Page]]]  # queries → pages (the crawler, in a run)
_CITE = re.compile(r"\[(\d{1,3})\]")


class CycleFailed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# answer budgets per step: structured answers are long JSON, turns are conversational
MAX_TOKENS = {"interests": 400, "user_turn": 300, "assistant_turn": 700, "metadata": 1500, "variations": 1500}


@dataclass
class CycleConfig:
    turns: int = 4  # user turns at most
    pages: int = 5  # pages read per cycle
    source_chars: int = 8_000  # text of the chunks given to the model (about 2,000 tokens)
    context_chars: int = 24_000  # the whole prompt kept within about 6,000 tokens
    variations: int = 0  # rephrased prompt/response pairs to add (0 = none)
    answer_tokens: int = 700  # an assistant answer's budget; a longer one is cut at its last full sentence


@dataclass
class Conversation:
    persona_id: str
    cycle: int
    queries: list[str]
    messages: list[dict[str, str]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    termination_reason: str = ""
    variations: list[dict[str, Any]] = field(default_factory=list)
    prompt_versions: list[str] = field(default_factory=list)
    conversation_id: str = field(default_factory=lambda: new_id("cv"))
    failed_steps: dict[str, dict[str, str]] = field(default_factory=dict)  # step → {reason, detail}

    @property
    def status(self) -> str:
        """complete, or partial: the turns exist and a later step (metadata, variations) failed."""
        return "partial" if self.failed_steps else "complete"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Conversation:
        """A stored `conversations` row (JSON columns as DuckDB returns them: text)."""

        def parsed(value: Any, empty: Any) -> Any:
            return json.loads(value) if isinstance(value, str) else (value if value is not None else empty)

        return cls(
            persona_id=row["persona_id"],
            cycle=int(row["cycle"]),
            queries=parsed(row["queries"], []),
            messages=parsed(row["messages"], []),
            sources=parsed(row["sources"], []),
            metadata=parsed(row["metadata"], None),
            termination_reason=row["termination_reason"] or "",
            variations=parsed(row["variations"], []),
            prompt_versions=parsed(row["prompt_versions"], []),
            conversation_id=row["conversation_id"],
            failed_steps=parsed(row["failed_steps"], {}),
        )

    @property
    def next_queries(self) -> list[str]:
        return [self.metadata["next_question"]] if self.metadata else []

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
            "created_at": dt.datetime.now(dt.UTC),
        }


def unit_scope(persona_id: str, cycle: int, attempt: int = 0) -> str:
    """The LLM cache's scope for one persona's cycle: its answers are its own (see LLMClient.chat). A
    unit tried again after it failed is a new attempt: replaying its cached answers would mostly replay
    the failure (the same queries finding no pages), so it gets fresh ones."""
    return f"{persona_id}/{cycle}" + (f"/attempt{attempt + 1}" if attempt else "")


async def run_cycle(
    llm: LLMClient,
    persona_id: str,
    persona: str,
    read: Reader,
    config: CycleConfig,
    *,
    cycle: int = 0,
    queries: list[str] | None = None,
    attempt: int = 0,
) -> Conversation:
    """One cycle; raises CycleFailed (no pages, …) or the LLM layer's errors. `attempt`: how many times
    this unit failed before (see unit_scope)."""
    used: list[prompts.Prompt] = []
    topics: list[str] = []
    scope = unit_scope(persona_id, cycle, attempt)
    if not queries:
        prompt = prompts.load("interests")
        used.append(prompt)
        reply = await llm.chat(
            [{"role": "user", "content": prompt.render(persona=persona)}],
            purpose="interests",
            schema=Interests,
            max_tokens=MAX_TOKENS["interests"],
            scope=scope,
        )
        assert isinstance(reply.value, Interests)
        topics, queries = reply.value.topics, reply.value.queries
    conversation = Conversation(persona_id, cycle, list(queries))
    pages = await read(conversation.queries)
    if not pages:
        raise CycleFailed(UnitReason.NO_PAGES, f"no readable pages for {conversation.queries}")
    chosen = reading.chunks(reading.select(pages, topics + conversation.queries, config.pages), config.source_chars)
    sources = fence.fence("SOURCES", reading.render_sources(chosen))
    digest = fence.fence("WEB PAGES", reading.render_digest(chosen))
    await _converse(llm, conversation, persona, sources, digest, config, used, scope)
    conversation.sources = _cited(conversation.messages, chosen)
    await _late_steps(llm, conversation, persona, config, used, scope, ("metadata", "variations"))
    conversation.prompt_versions = sorted({p.id for p in used})
    return conversation


async def complete(
    llm: LLMClient, conversation: Conversation, persona: str, config: CycleConfig, *, attempt: int = 0
) -> Conversation:
    """Run again only the steps a partial conversation failed (what `swarm run --resume` does with it);
    the turns, sources and the steps that worked are kept as they are."""
    failed = tuple(conversation.failed_steps)
    conversation.failed_steps = {}
    used = [prompts.load(step) for step in failed]
    scope = unit_scope(conversation.persona_id, conversation.cycle, attempt)
    await _late_steps(llm, conversation, persona, config, used, scope, failed)
    conversation.prompt_versions = sorted({*conversation.prompt_versions, *(p.id for p in used)})
    return conversation


async def _late_steps(
    llm: LLMClient,
    conversation: Conversation,
    persona: str,
    config: CycleConfig,
    used: list[prompts.Prompt],
    scope: str,
    steps: tuple[str, ...],
) -> None:
    """The steps over the finished turns. One whose answer cannot be used (after its repair round) does not
    cost the conversation: the failure is recorded in `failed_steps` and the conversation kept, partial.
    An endpoint that is down (LLMUnavailable) still stops the unit, and the run."""
    # the turns quote the pages: the transcript is web text too
    transcript = fence.fence("CONVERSATION", fence.transcript(conversation.messages))
    for step in steps:
        if step == "variations" and not config.variations:
            continue
        prompt = prompts.load(step)
        if prompt not in used:
            used.append(prompt)
        try:
            if step == "metadata":
                reply = await llm.chat(
                    [{"role": "user", "content": prompt.render(persona=persona, conversation=transcript)}],
                    purpose="metadata",
                    max_tokens=MAX_TOKENS["metadata"],
                    schema=Metadata,
                    scope=scope,
                )
                assert isinstance(reply.value, Metadata)
                conversation.metadata = reply.value.model_dump()
            else:
                reply = await llm.chat(
                    [{"role": "user", "content": prompt.render(n=str(config.variations), conversation=transcript)}],
                    purpose="variations",
                    max_tokens=MAX_TOKENS["variations"],
                    schema=variations_of(config.variations),
                    scope=scope,
                )
                assert reply.value is not None
                items: list[Variation] = reply.value.variations  # type: ignore[attr-defined]
                conversation.variations = [v.model_dump() for v in items]
        except LLMOutputError as exc:
            conversation.failed_steps[step] = {"reason": str(exc.reason), "detail": str(exc)}


async def run_persona(
    llm: LLMClient, persona_id: str, persona: str, read: Reader, config: CycleConfig, cycles: int = 1
) -> list[Conversation]:
    """`cycles` cycles in a row: each next cycle searches for the question the last one predicted, so a
    persona follows its own trail across the web."""
    done: list[Conversation] = []
    queries: list[str] | None = None
    for number in range(cycles):
        conversation = await run_cycle(llm, persona_id, persona, read, config, cycle=number, queries=queries)
        done.append(conversation)
        queries = conversation.next_queries
    return done


async def _converse(
    llm: LLMClient,
    conversation: Conversation,
    persona: str,
    sources: str,
    digest: str,
    config: CycleConfig,
    used: list[prompts.Prompt],
    scope: str,
) -> None:
    user_prompt, assistant_prompt = prompts.load("user_turn"), prompts.load("assistant_turn")
    used += [user_prompt, assistant_prompt]
    # about 0.6 words a token, with room to finish the sentence
    assistant_system = assistant_prompt.render(sources=sources, words=str(max(40, config.answer_tokens // 2)))
    messages = conversation.messages
    for turn in range(config.turns):
        # the simulator gets one instruction with the conversation as a transcript: models of every size
        # follow that better than a mirrored chat where they must play the "assistant" as the user
        transcript = fence.fence("CONVERSATION", fence.transcript(messages)) if messages else ""
        ask = await llm.chat(
            [
                {
                    "role": "user",
                    "content": user_prompt.render(
                        persona=persona,
                        sources=digest,
                        transcript=transcript or "(nothing yet: write their opening message)",
                    ),
                }
            ],
            purpose="user_turn",
            max_tokens=MAX_TOKENS["user_turn"],
            schema=UserTurn,
            scope=scope,
        )
        assert isinstance(ask.value, UserTurn)
        if ask.value.done and turn > 0:
            conversation.termination_reason = "persona_done"
            return
        messages.append({"role": "user", "content": ask.value.message})
        answer = await llm.chat(
            [{"role": "system", "content": assistant_system}, *messages],
            purpose="assistant_turn",
            max_tokens=config.answer_tokens,
            trim_on_length=True,
            scope=scope,
        )
        messages.append({"role": "assistant", "content": answer.text})
        if len(assistant_system) + sum(len(m["content"]) for m in messages) > config.context_chars:
            conversation.termination_reason = "context_full"
            return
    conversation.termination_reason = "turns_reached"


def _cited(messages: list[dict[str, str]], chosen: list[reading.Chunk]) -> list[dict[str, Any]]:
    """The chunks the assistant cited, as pages: [{n, page_id, url, title}], in citation order."""
    by_number = {c.number: c for c in chosen}
    seen: dict[int, dict[str, Any]] = {}
    for message in messages:
        if message["role"] != "assistant":
            continue
        for match in _CITE.finditer(message["content"]):
            n = int(match.group(1))
            if n in by_number and n not in seen:
                page = by_number[n].page
                seen[n] = {"n": n, "page_id": page.page_id, "url": page.url, "title": page.title}
    return list(seen.values())
