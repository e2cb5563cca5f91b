"""`next`: the question that seeds the persona's next cycle."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.recipes.spec import StepSpec
from agents.steps.base import CycleState, Problem, StepFailed, StepKind, field_problem

MISSING_INPUT = "missing_input"  # failed_steps reason: an earlier step's output it reads is not there


class NextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # take the question from an earlier step's output instead of asking: "metadata.next_question"
    from_output: str | None = Field(None, alias="from", pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class Next(StepKind):
    """The question the persona would ask next: taken from an earlier step's output (`from =
    "metadata.next_question"`: no extra call), or asked of a model with its own template (a free-text
    answer, or an output with a `question` field). The next cycle searches for it."""

    Options = NextOptions
    prompt = "optional"
    max_tokens = 100

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        assert isinstance(options, NextOptions)
        if (options.from_output is None) == (spec.template is None):
            return [((), "give either from (an earlier step's output field) or a template")]
        if options.from_output is not None:
            step, field, *_ = options.from_output.split(".")
            if step not in earlier:
                return [(("from",), f"no step {step!r} before this one: from names an earlier step's output")]
            output = earlier[step].output
            if output is not None and field not in output.fields:
                return [(("from",), f"step {step!r} has no output field {field!r} ({', '.join(output.fields)})")]
            if output is not None and output.fields[field].type != "string":
                return [(("from",), f"{options.from_output} is a {output.fields[field].type}, not a string")]
        return field_problem(spec.prompt(), "question", "string", ()) if spec.output is not None else []

    async def run(self, state: CycleState) -> None:
        options = self.options
        assert isinstance(options, NextOptions)
        if options.from_output:
            question = _lookup(state.conversation.outputs, options.from_output)
        else:
            reply = await self.ask(state, "", state.values())
            question = reply.value.model_dump()["question"] if reply.value is not None else reply.text
        text = re.sub(r"\s+", " ", str(question or "")).strip()
        if not text:
            raise StepFailed(MISSING_INPUT, f"no question in {options.from_output or 'the answer'}")
        state.conversation.outputs[self.name] = text
        state.conversation.next_question = text


def _lookup(outputs: dict[str, Any], path: str) -> Any:
    value: Any = outputs
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise StepFailed(MISSING_INPUT, f"{path}: the output of an earlier step is not there")
        value = value[key]
    return value
