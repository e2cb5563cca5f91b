"""`judge` and `grounding`: a model's opinion of a conversation, kept as scores in the `quality` table
beside the checks (docs/quality.md).

`swarm eval --judge NAME` runs a recipe's judges over stored conversations; a judge with `inline =
true` also runs in `swarm run`, after each conversation is made. Their templates read, besides the
persona and the transcript, `sources` (the pages the assistant was given, fenced) and `claims` (the
assistant's sentences that cite a source, numbered, fenced).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents import fence
from agents.quality.checks import Result, claims
from agents.recipes.spec import StepSpec
from agents.steps.base import CycleState, Problem, StepKind, field_problem

JUDGE_VARIABLES = frozenset({"sources", "claims", "transcript"})


class JudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    score: str = "score"  # the output field with the score: an integer or number with a minimum and a maximum
    reason: str | None = "reason"  # the output field with the judge's reason (the result's detail), if any
    threshold: float = Field(0.6, ge=0, le=1, allow_inf_nan=False)  # passes at this score, scaled to 0–1
    blocking: bool = False  # true: `swarm export` leaves out what fails it, as it does for the blocking checks
    inline: bool = False  # true: `swarm run` judges each conversation as it is made; false: only `swarm eval`


class JudgeKind(StepKind):
    """What the two judge kinds share: when they run, and their variables."""

    Options = JudgeOptions
    output = "structured"
    max_tokens = 400
    variables = JUDGE_VARIABLES

    def due(self, state: CycleState) -> bool:
        options = self.options
        assert isinstance(options, JudgeOptions)
        return bool(state.conversation.messages) and (state.judging or options.inline)

    def judge_values(self, state: CycleState) -> dict[str, Any]:
        said = [(sentence, numbers) for sentence, numbers in claims(state.conversation.messages) if numbers]
        listed = "\n".join(f"{i}. {fence.quoted(sentence)}" for i, (sentence, _) in enumerate(said, 1))
        return state.values(claims=fence.fence("CLAIMS", listed or "(no sentence cites a source)"),
                            sources=state.fenced.get("sources", ""))  # fmt: skip

    def result(self, state: CycleState, name: str, score: float, detail: str) -> None:
        options = self.options
        assert isinstance(options, JudgeOptions)
        score = round(max(0.0, min(1.0, score)), 4)
        state.conversation.quality.append(Result(name, score, score >= options.threshold, options.blocking, detail))


class Judge(JudgeKind):
    """A rubric score from a model (persona adherence, helpfulness …): the output's `score` field, scaled
    to 0–1 by its minimum and maximum, with its `reason`; passes at `threshold`. Kept in `quality` under
    the step's name."""

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        assert isinstance(options, JudgeOptions)
        fields = spec.output.fields if spec.output else {}
        found = fields.get(options.score)
        if found is None or found.type not in ("integer", "number"):
            return [(("output", "fields"), f"the output needs an integer or number field {options.score!r} (score)")]
        if found.minimum is None or found.maximum is None or found.maximum <= found.minimum:
            return [(("output", "fields", options.score), "the score needs a minimum and a larger maximum")]
        if options.reason is not None and spec.output is not None:
            return field_problem(spec.prompt(), options.reason, "string", ())
        return []

    async def run(self, state: CycleState) -> None:
        if not self.due(state):
            return
        options = self.options
        assert isinstance(options, JudgeOptions)
        reply = await self.ask(state, "", self.judge_values(state))
        assert reply.value is not None
        value = reply.value.model_dump()
        field = self.prompts[""].spec.output.fields[options.score]  # type: ignore[union-attr]
        low, high = float(field.minimum or 0), float(field.maximum or 1)
        raw = float(value[options.score])
        reason = " ".join(str(value.get(options.reason or "", "")).split())
        detail = f"{raw:g} on {low:g}–{high:g}" + (f": {reason[:300]}" if reason else "")
        self.result(state, self.name, (raw - low) / (high - low), detail)


class Grounding(JudgeKind):
    """Citation recall and precision as STORM and ALCE define them, asked in one call a conversation: of
    the assistant's sentences that cite, the share its cited sources support (`NAME_recall`), and of its
    citations, the share that support their sentence (`NAME_precision`). The output's `supported` lists
    the claims supported; `irrelevant` the citations (`claim:source`) that do not support theirs."""

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        prompt = spec.prompt()
        problems: list[Problem] = []
        for name in ("supported", "irrelevant"):
            fields = prompt.output.fields if prompt and prompt.output else {}
            items = fields[name].items if name in fields else None
            wanted = "integer" if name == "supported" else "string"
            if items is None or items.type != wanted:
                problems.append((("output", "fields"), f"the output needs a list field {name!r} of {wanted}s"))
        return problems

    async def run(self, state: CycleState) -> None:
        if not self.due(state):
            return
        said = [(sentence, numbers) for sentence, numbers in claims(state.conversation.messages) if numbers]
        citations = {(i, n) for i, (_, numbers) in enumerate(said, 1) for n in numbers}
        if not said:  # nothing to ask about
            self.result(state, f"{self.name}_recall", 0.0, "no sentence cites a source")
            self.result(state, f"{self.name}_precision", 0.0, "no sentence cites a source")
            return
        reply = await self.ask(state, "", self.judge_values(state))
        assert reply.value is not None
        value = reply.value.model_dump()
        supported = {int(i) for i in value["supported"]} & set(range(1, len(said) + 1))
        irrelevant = {pair for pair in map(_pair, value["irrelevant"]) if pair in citations}
        unsupported = [str(i) for i in range(1, len(said) + 1) if i not in supported]
        self.result(
            state,
            f"{self.name}_recall",
            len(supported) / len(said),
            f"{len(supported)} of {len(said)} cited sentences supported"
            + (f"; not: {', '.join(unsupported[:10])}" if unsupported else ""),
        )
        self.result(
            state,
            f"{self.name}_precision",
            1 - len(irrelevant) / len(citations),
            f"{len(citations) - len(irrelevant)} of {len(citations)} citations support their sentence"
            + (f"; not: {', '.join(f'{i}:[{n}]' for i, n in sorted(irrelevant)[:10])}" if irrelevant else ""),
        )


def _pair(text: str) -> tuple[int, int] | None:
    claim, _, source = str(text).strip().strip("[]").partition(":")
    try:
        return int(claim), int(source.strip().strip("[]"))
    except ValueError:
        return None
