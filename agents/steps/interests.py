"""`interests`: what the persona would follow — topics, and the web searches it would type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from agents.recipes.spec import StepSpec
from agents.steps.base import CycleState, Problem, StepKind, field_problem


class Interests(StepKind):
    """Topics and search queries the persona would follow (skipped when the cycle follows the question the
    cycle before predicted). Its output needs `queries` (a list of strings); `topics`, when there, also
    steer which pages are read."""

    output = "structured"
    max_tokens = 400
    provides = frozenset({"queries", "topics"})

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        return field_problem(spec.prompt(), "queries", "string list", ())

    async def run(self, state: CycleState) -> None:
        if state.conversation.queries:  # the next question of the cycle before
            return
        reply = await self.ask(state, "", state.values())
        assert reply.value is not None
        value: dict[str, Any] = reply.value.model_dump()
        state.conversation.outputs[self.name] = value
        state.topics = [str(t) for t in value.get("topics") or []]
        state.conversation.queries = [str(q) for q in value["queries"]]
