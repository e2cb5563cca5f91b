"""`converse`: the persona (a user simulator) and a grounded assistant talk about what was read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents import reading
from agents.recipes import templates
from agents.recipes.spec import PromptSpec, StepSpec
from agents.runs import UnitReason
from agents.steps.base import CycleState, Problem, StepFailed, StepKind, field_problem

_CITE = re.compile(r"\[(\d{1,3})\]")


MAX_TURNS = 100


class ConverseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # user turns at most: a number, or an expression over the persona ("2 if persona.age | int > 60
    # else 4"); none: the run's --turns
    turns: int | str | None = Field(None, union_mode="left_to_right")
    user: PromptSpec  # the simulator: answers {message, done}
    assistant: PromptSpec  # the assistant's system message; answers free text

    @field_validator("turns")
    @classmethod
    def _turns(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= MAX_TURNS:
            raise ValueError(f"turns must be 1 to {MAX_TURNS}")
        if isinstance(value, str):
            try:
                templates.check_expression(value)
            except templates.TemplateProblem as exc:
                raise ValueError(str(exc)) from None
        return value

    def turns_for(self, state: CycleState) -> int:
        """The turns for this persona; raises StepFailed when an expression gives no usable number."""
        if self.turns is None:
            return state.config.turns
        if isinstance(self.turns, int):
            return self.turns
        try:
            value = templates.evaluate(self.turns, state.values())
        except templates.TemplateProblem as exc:
            raise StepFailed(UnitReason.TEMPLATE_ERROR, f"turns: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TURNS:
            shown = repr(value) if len(repr(value)) < 80 else repr(value)[:80] + "…"
            raise StepFailed(UnitReason.TEMPLATE_ERROR, f"turns {self.turns!r} gave {shown}, not 1 to {MAX_TURNS}")
        return value


class Converse(StepKind):
    """The user simulator speaks as the persona (its `user` prompt answers a `message` and, optionally,
    `done`), the assistant answers from the numbered sources and cites them (its `assistant` prompt is the
    system message, the turns follow). Ends when the persona is done (not before its second turn), the
    turns are used, or the prompt outgrows the run's context budget. The cited chunks become the
    conversation's sources."""

    Options = ConverseOptions
    prompt = "none"
    after = ("read",)
    provides = frozenset({"transcript"})
    max_tokens = 300  # the simulator's message; the assistant's budget is the run's --answer-tokens

    @classmethod
    def prompt_specs(cls, spec: StepSpec, options: BaseModel) -> dict[str, PromptSpec]:
        assert isinstance(options, ConverseOptions)
        return {"user": options.user, "assistant": options.assistant}

    @classmethod
    def expressions(cls, options: BaseModel) -> dict[str, str]:
        assert isinstance(options, ConverseOptions)
        return {"turns": options.turns} if isinstance(options.turns, str) else {}

    @classmethod
    def part_variables(cls, part: str) -> frozenset[str]:
        # the simulator sees the conversation so far (empty at first); the assistant its answer length
        return frozenset({"transcript", "turn"}) if part == "user" else frozenset({"words"})

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        assert isinstance(options, ConverseOptions)
        problems = field_problem(options.user, "message", "string", ("user",))
        fields = options.user.output.fields if options.user.output else {}
        if "done" in fields and fields["done"].type != "boolean":
            problems.append((("user", "output", "fields", "done"), "done must be a boolean field"))
        if options.assistant.output is not None:
            problems.append((("assistant", "output"), "the assistant answers in free text: remove its output"))
        return problems

    async def run(self, state: CycleState) -> None:
        options = self.options
        assert isinstance(options, ConverseOptions)
        conversation, config = state.conversation, state.config
        assistant = self.prompts["assistant"]
        answer_tokens = assistant.spec.max_tokens or config.answer_tokens
        # about 0.6 words a token, with room to finish the sentence
        words = str(max(40, answer_tokens // 2))
        messages = conversation.messages
        system: str | None = None
        for turn in range(options.turns_for(state)):
            # the simulator gets one instruction with the conversation as a transcript: models of every size
            # follow that better than a mirrored chat where they must play the "assistant" as the user
            values = state.values(turn=turn)
            values.setdefault("transcript", "")  # before the first turn: nothing yet
            ask = await self.ask(state, "user", values)
            assert ask.value is not None
            said: dict[str, Any] = ask.value.model_dump()
            if said.get("done") and turn > 0:
                conversation.termination_reason = "persona_done"
                break
            messages.append({"role": "user", "content": str(said["message"])})
            if system is None:
                system = assistant.render(state.values(words=words))
                state.used.add(assistant.id)
            answer = await state.model(assistant.spec.model).chat(
                [{"role": "system", "content": system}, *messages],
                purpose=self.purpose("assistant"),
                temperature=assistant.spec.temperature,
                max_tokens=answer_tokens,
                trim_on_length=True,
                scope=state.scope,
            )
            messages.append({"role": "assistant", "content": answer.text})
            if len(system) + sum(len(m["content"]) for m in messages) > config.context_chars:
                conversation.termination_reason = "context_full"
                break
        else:
            conversation.termination_reason = "turns_reached"
        conversation.sources = cited(messages, state.chosen)


def cited(messages: list[dict[str, str]], chosen: list[reading.Chunk]) -> list[dict[str, Any]]:
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
