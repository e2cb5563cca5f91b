"""`structured` (any schema over the conversation) and `variations` (rephrased prompt/response pairs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.recipes import outputs
from agents.steps.base import CycleState, StepKind


class Structured(StepKind):
    """A JSON answer with the fields the recipe declares, validated (and repaired once); kept in
    `outputs` under the step's name. A step named `metadata` also fills the `metadata` column."""

    output = "structured"
    max_tokens = 1500
    exported = True

    async def run(self, state: CycleState) -> None:
        reply = await self.ask(state, "", state.values())
        assert reply.value is not None
        value: dict[str, Any] = reply.value.model_dump()
        state.conversation.outputs[self.name] = value
        if self.name == "metadata":
            state.conversation.metadata = value


class VariationsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    count: int | None = Field(None, ge=0, le=50)  # pairs to write; none: the run's --variations (0 skips the step)


class Variations(StepKind):
    """`count` items of the declared output (a prompt/response pair, say), asked for in one answer whose
    schema holds exactly that many; skipped when the count is 0. Its items are what `swarm export
    --variations` adds as one-turn examples when they have `prompt` and `response`."""

    Options = VariationsOptions
    output = "structured"
    max_tokens = 1500
    variables = frozenset({"n"})

    async def run(self, state: CycleState) -> None:
        options = self.options
        assert isinstance(options, VariationsOptions)
        count = state.config.variations if options.count is None else options.count
        if not count:
            return
        prompt = self.prompts[""]
        assert prompt.schema is not None
        wrapper = _wrapper(prompt.schema, self.name, count)
        reply = await self.ask(state, "", state.values(n=count), schema=wrapper)
        assert reply.value is not None
        items = [item.model_dump() for item in getattr(reply.value, self.name)]
        state.conversation.outputs[self.name] = items
        state.conversation.variations = items


_WRAPPERS: dict[tuple[type[BaseModel], str, int], type[BaseModel]] = {}


def _wrapper(item: type[BaseModel], key: str, count: int) -> type[BaseModel]:
    """One model per (item, count): its JSON schema is built once (structured.schema_of caches by model)."""
    found = _WRAPPERS.get((item, key, count))
    if found is None:
        found = _WRAPPERS[(item, key, count)] = outputs.wrapped(item, key, count, outputs.camel(key))
    return found
