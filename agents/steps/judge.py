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
from agents.llm.errors import LLMOutputError
from agents.quality.checks import BY_NAME, Result, claims
from agents.recipes.spec import StepSpec
from agents.steps.base import CycleState, Problem, StepKind, field_problem

JUDGE_VARIABLES = frozenset({"sources", "claims", "transcript"})


class JudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    score: str = "score"  # the output field with the score: an integer or number with a minimum and a maximum
    reason: str = "reason"  # the output field with the judge's reason (the result's detail); "" for none
    threshold: float = Field(0.6, ge=0, le=1, allow_inf_nan=False)  # passes at this score, scaled to 0–1
    blocking: bool = False  # true: `swarm export` leaves out what fails it, as it does for the blocking checks
    inline: bool = False  # true: `swarm run` judges each conversation as it is made; false: only `swarm eval`


class JudgeKind(StepKind):
    """What the two judge kinds share: when they run, their variables, their answer and its names."""

    Options = JudgeOptions
    output = "structured"
    max_tokens = 400
    variables = JUDGE_VARIABLES

    @classmethod
    def result_names(cls, name: str) -> list[str]:
        """The `quality` rows the step writes."""
        return [name]

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        # a row's key is (conversation, name): a judge named as a check, or as another judge's row, would
        # overwrite it
        earlier_rows = {f"{step.name}{end}" for step in earlier.values() for end in ("", "_recall", "_precision")}
        clash = [n for n in cls.result_names(spec.name) if n in BY_NAME or n in earlier_rows]
        if not clash:
            return []
        return [(("name",), f"{clash[0]!r} is a quality check's or another step's name: name the judge otherwise")]

    async def answer(self, state: CycleState) -> dict[str, Any] | None:
        """The model's judgement; in a run, an answer that stays invalid is no judgement, not a failed
        step (the conversation is as good as it was: `swarm eval --judge` asks again later)."""
        try:
            reply = await self.ask(state, "", self.judge_values(state))
        except LLMOutputError:
            if state.judging:
                raise
            return None
        assert reply.value is not None
        return reply.value.model_dump()

    def due(self, state: CycleState) -> bool:
        options = self.options
        assert isinstance(options, JudgeOptions)
        return bool(state.conversation.messages) and (state.judging or options.inline)

    def judge_values(self, state: CycleState) -> dict[str, Any]:
        said = [(sentence, numbers) for sentence, numbers in claims(state.conversation.messages) if numbers]
        listed = "\n".join(f"{i}. {fence.quoted(sentence)}" for i, (sentence, _) in enumerate(said, 1))
        return state.values(claims=fence.fence(fence.CLAIMS, listed or "(no sentence cites a source)"),
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
        clash = super().check(spec, options, earlier)
        if clash:
            return clash
        fields = spec.output.fields if spec.output else {}
        found = fields.get(options.score)
        if found is None or found.type not in ("integer", "number"):
            return [(("output", "fields"), f"the output needs an integer or number field {options.score!r} (score)")]
        if found.minimum is None or found.maximum is None or found.maximum <= found.minimum:
            return [(("output", "fields", options.score), "the score needs a minimum and a larger maximum")]
        if options.reason and spec.output is not None:
            return field_problem(spec.prompt(), options.reason, "string", ())
        return []

    async def run(self, state: CycleState) -> None:
        if not self.due(state):
            return
        options = self.options
        assert isinstance(options, JudgeOptions)
        value = await self.answer(state)
        if value is None:
            return
        field = self.prompts[""].spec.output.fields[options.score]  # type: ignore[union-attr]
        assert field.minimum is not None and field.maximum is not None  # the check says so
        low, high = float(field.minimum), float(field.maximum)
        raw = float(value[options.score])
        reason = " ".join(str(value.get(options.reason, "")).split()) if options.reason else ""
        detail = f"{raw:g} on {low:g}–{high:g}" + (f": {reason[:300]}" if reason else "")
        self.result(state, self.name, (raw - low) / (high - low), detail)


class Grounding(JudgeKind):
    """Citation recall and precision as ALCE defines them (Gao et al., 2023; STORM scores its articles
    the same way), asked in one call a conversation: the model is shown the assistant's sentences that
    cite, with their sources, and answers which are supported by their cited sources together
    (`supported`) and which citations support nothing of their sentence (`irrelevant`, `sentence:source`).
    Recall (`NAME_recall`): the share of all the assistant's sentences that cite and are supported (one
    that cites nothing counts 0). Precision (`NAME_precision`): the share of citations on a supported
    sentence that are not irrelevant (a citation on an unsupported sentence counts 0)."""

    @classmethod
    def result_names(cls, name: str) -> list[str]:
        return [f"{name}_recall", f"{name}_precision"]

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        problems = super().check(spec, options, earlier)
        prompt = spec.prompt()
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
        sentences = claims(state.conversation.messages)
        said = [(sentence, numbers) for sentence, numbers in sentences if numbers]
        citations = {(i, n) for i, (_, numbers) in enumerate(said, 1) for n in numbers}
        recall, precision = f"{self.name}_recall", f"{self.name}_precision"
        if not said:  # nothing to ask about
            self.result(state, recall, 0.0, f"none of {len(sentences)} assistant sentences cites a source")
            self.result(state, precision, 0.0, "no citation")
            return
        value = await self.answer(state)
        if value is None:
            return
        supported = {int(i) for i in value["supported"]} & set(range(1, len(said) + 1))
        irrelevant = {pair for pair in map(_pair, value["irrelevant"]) if pair in citations}
        precise = {(i, n) for i, n in citations if i in supported and (i, n) not in irrelevant}
        unsupported = [str(i) for i in range(1, len(said) + 1) if i not in supported]
        self.result(
            state,
            recall,
            len(supported) / len(sentences),
            f"{len(supported)} of {len(sentences)} assistant sentences cite and are supported ({len(said)} cite)"
            + (f"; cited, not supported: {', '.join(unsupported[:10])}" if unsupported else ""),
        )
        self.result(
            state,
            precision,
            len(precise) / len(citations),
            f"{len(precise)} of {len(citations)} citations support their supported sentence"
            + (f"; irrelevant: {', '.join(f'{i}:[{n}]' for i, n in sorted(irrelevant)[:10])}" if irrelevant else ""),
        )


def _pair(text: str) -> tuple[int, int] | None:
    claim, _, source = str(text).strip().strip("[]").partition(":")
    try:
        return int(claim), int(source.strip().strip("[]"))
    except ValueError:
        return None
