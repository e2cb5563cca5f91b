"""What a step kind is, and the state the steps of one cycle share.

A kind (a StepKind subclass) declares its options (a pydantic model, validated against the step's keys
in the recipe), whether it has a prompt of its own and what its output must be; `run` does its work on
the CycleState: ask a model through `ask`, read pages, add turns, put its result in `outputs`.

    @STEP_KINDS.register("translate")
    class Translate(StepKind):
        \"\"\"The conversation in another language.\"\"\"
        output = "text"
        async def run(self, state: CycleState) -> None:
            reply = await self.ask(state, "", state.values())
            state.conversation.outputs[self.name] = reply.text

A package adds kinds through the entry-point group `persona_swarm.steps` (docs/extending.md).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import jinja2
from pydantic import BaseModel, ConfigDict

from agents import fence
from agents.conversation import Conversation, CycleConfig
from agents.llm import LLMClient
from agents.llm.client import Reply
from agents.reading import Chunk, Page
from agents.recipes import outputs as output_models
from agents.recipes import templates
from agents.recipes.spec import FieldSpec, PromptSpec, StepSpec
from storage.registry import Registry

Reader = Callable[[list[str]], Awaitable[list[Page]]]  # queries → pages (the crawler, in a run)
Problem = tuple[tuple[str | int, ...], str]  # (where in the step, what is wrong)

# the variables every template may read; the steps add theirs (StepKind.provides, StepKind.variables)
COMMON_VARIABLES = frozenset({"persona", "cycle", "queries", "topics", "outputs"})


class CycleFailed(Exception):
    """The cycle cannot make its conversation (no pages, a template that cannot render …): the unit fails."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class StepFailed(Exception):
    """A step could not do its work; after the conversation exists this keeps it, partial."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class Prompt:
    """A recipe prompt, compiled: its template, its answer's model (None: free text) and its version."""

    spec: PromptSpec
    template: jinja2.Template
    schema: type[BaseModel] | None
    id: str  # `step[.part]@sha`: what a conversation records in prompt_versions

    def render(self, values: Mapping[str, Any]) -> str:
        return templates.render(self.template, values)


@dataclass
class CycleState:
    """What the steps of one cycle share; each step reads it and adds to it."""

    persona: templates.PersonaView
    conversation: Conversation
    config: CycleConfig
    models: Mapping[str, LLMClient]  # alias → client
    read: Reader
    scope: str  # the LLM cache's scope for this unit (agents.cycle.unit_scope)
    topics: list[str] = field(default_factory=list)
    chosen: list[Chunk] = field(default_factory=list)
    fenced: dict[str, str] = field(default_factory=dict)  # sources, digest: web text, fenced by `read`
    used: set[str] = field(default_factory=set)  # prompt ids
    judging: bool = False  # `swarm eval`: every judge step runs (in a run, only the inline ones)

    def values(self, **extra: Any) -> dict[str, Any]:
        """The template variables at this point of the cycle (`extra`: a step's own)."""
        conversation = self.conversation
        values: dict[str, Any] = {
            "persona": self.persona,
            "cycle": conversation.cycle,
            "queries": conversation.queries,
            "topics": self.topics,
            "outputs": conversation.outputs,
            **self.fenced,
        }
        if conversation.messages:  # the turns quote the pages: the transcript is web text too
            values["transcript"] = fence.fence(fence.TRANSCRIPT, fence.transcript(conversation.messages))
        return {**values, **extra}

    def model(self, alias: str) -> LLMClient:
        return self.models[alias]


class StepKind(ABC):
    """A kind of step. Subclasses set the class attributes and write `run`; the docstring's first line is
    what `swarm recipe kinds` shows."""

    Options: ClassVar[type[BaseModel]] = NoOptions  # the kind's own keys in a step
    prompt: ClassVar[Literal["none", "optional", "required"]] = "required"  # a template at the step's level
    output: ClassVar[Literal["text", "structured", "any"]] = "any"  # what the step's own prompt answers
    max_tokens: ClassVar[int] = 1024  # the answer's budget when the recipe sets none
    after: ClassVar[tuple[str, ...]] = ()  # kinds that must come earlier in a recipe
    provides: ClassVar[frozenset[str]] = frozenset()  # template variables it makes for the steps after it
    variables: ClassVar[frozenset[str]] = frozenset()  # variables its own templates may read besides those
    exported: ClassVar[bool] = False  # its output's fields become columns of `swarm export`

    def __init__(self, spec: StepSpec, options: BaseModel, prompts: Mapping[str, Prompt]):
        self.spec, self.options, self.prompts = spec, options, dict(prompts)

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def prompt_specs(cls, spec: StepSpec, options: BaseModel) -> dict[str, PromptSpec]:
        """Its prompts by part ("" is the step's own); a kind with several (converse) adds its parts."""
        own = spec.prompt()
        return {"": own} if own is not None else {}

    @classmethod
    def part_variables(cls, part: str) -> frozenset[str]:
        return cls.variables

    @classmethod
    def check(cls, spec: StepSpec, options: BaseModel, earlier: Mapping[str, StepSpec]) -> list[Problem]:
        """What is wrong with this step beyond its options' types (an output missing a field it needs, a
        reference to a step that is not `earlier` …)."""
        return []

    @classmethod
    def expressions(cls, options: BaseModel) -> dict[str, str]:
        """Its options that are Jinja expressions (option → expression), whose names the check verifies."""
        return {}

    @abstractmethod
    async def run(self, state: CycleState) -> None:
        """Do the step's work on the cycle's state."""

    async def ask(
        self,
        state: CycleState,
        part: str,
        values: Mapping[str, Any],
        *,
        schema: type[BaseModel] | None = None,
        default_tokens: int | None = None,
    ) -> Reply:
        """Render prompt `part` and send it as one user message to its model alias."""
        prompt = self.prompts[part]
        state.used.add(prompt.id)
        return await state.model(prompt.spec.model).chat(
            [{"role": "user", "content": prompt.render(values)}],
            purpose=self.purpose(part),
            schema=schema or prompt.schema,
            temperature=prompt.spec.temperature,
            max_tokens=prompt.spec.max_tokens or default_tokens or self.max_tokens,
            scope=state.scope,
        )

    def purpose(self, part: str) -> str:
        """`llm_calls.purpose` of a call of prompt `part`."""
        return f"{self.name}.{part}" if part else self.name


def compile_prompt(step: str, part: str, spec: PromptSpec) -> Prompt:
    """A prompt ready to send; raises templates.TemplateProblem."""
    label = f"{step}.{part}" if part else step
    schema = output_models.model(spec.output, output_models.camel(label.replace(".", "_"))) if spec.output else None
    version = hashlib.sha256(spec.template.encode("utf-8")).hexdigest()[:8]
    return Prompt(spec, templates.compile_template(spec.template), schema, f"{label}@{version}")


def field_problem(spec: PromptSpec | None, name: str, kind: str, where: tuple[str | int, ...]) -> list[Problem]:
    """A problem when `spec`'s output lacks field `name` of this kind ("string", "boolean", "string list")."""
    fields: dict[str, FieldSpec] = spec.output.fields if spec and spec.output else {}
    found = fields.get(name)
    ok = found is not None and (
        (kind == "string list" and found.type == "list" and found.items is not None and found.items.type == "string")
        or found.type == kind
    )
    return [] if ok else [((*where, "output", "fields"), f"the output needs a {kind} field {name!r}")]


STEP_KINDS: Registry[type[StepKind]] = Registry(
    "persona_swarm.steps",
    "step kind",
    builtins={
        "interests": "agents.steps.interests:Interests",
        "read": "agents.steps.read:Read",
        "converse": "agents.steps.converse:Converse",
        "structured": "agents.steps.structured:Structured",
        "variations": "agents.steps.structured:Variations",
        "next": "agents.steps.next:Next",
        "judge": "agents.steps.judge:Judge",
        "grounding": "agents.steps.judge:Grounding",
    },
)
