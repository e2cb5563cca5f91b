"""What a recipe file may hold, as pydantic models: the shape `swarm recipe check` validates.

A recipe is the steps of one prompt cycle, in order. Each step has a kind (what it does: see
agents/steps) and, for the kinds that ask a model, a prompt: a Jinja2 template, an output (free text,
or the fields of a JSON answer), the model alias it goes to, a temperature and a token budget. A
kind's own options (the turns of a conversation, the pages read, …) sit beside them in the step.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

_NAME = r"^[a-z][a-z0-9_]{0,39}$"  # a step, field or alias name: usable as a JSON key and a column name
DEFAULT_MODEL = "default"  # the alias of the run's own endpoint (--base-url, OPENAI_BASE_URL, embedded)


class Strict(BaseModel):
    # strict: `max_tokens = true` or `turns = "3"` is a mistake to point out, not a value to convert
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


MAX_LENGTH = 1_000_000  # characters of one string field; items of one list: MAX_ITEMS
MAX_ITEMS = 10_000


class FieldSpec(Strict):
    """One field of a structured answer. Every string should have a max_length: it is part of the schema
    a grammar-constrained model decodes, and keeps a small model from running on until max_tokens."""

    type: Literal["string", "integer", "number", "boolean", "list"]
    description: str | None = None
    min_length: int | None = Field(None, ge=0, le=MAX_LENGTH)  # string
    max_length: int | None = Field(None, ge=1, le=MAX_LENGTH)
    pattern: str | None = None
    enum: list[str] | None = Field(None, min_length=1)
    minimum: float | None = Field(None, allow_inf_nan=False, ge=-1e15, le=1e15)  # integer, number
    maximum: float | None = Field(None, allow_inf_nan=False, ge=-1e15, le=1e15)
    items: FieldSpec | None = None  # list
    min_items: int | None = Field(None, ge=0, le=MAX_ITEMS)
    max_items: int | None = Field(None, ge=1, le=MAX_ITEMS)
    default: Any = None  # given: the field may be left out
    examples: list[Any] | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
            try:  # the answer is validated by pydantic's own engine, which has no look-around or backreferences
                create_model("Pattern", value=(Annotated[str, Field(pattern=value)], ...))
            except Exception as exc:
                first = str(exc).strip().splitlines()[-1][:200]
                raise ValueError(f"a pattern the answer's validator cannot use: {first}") from None
        return value

    @field_validator("enum")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("the same value twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        string_only = ("min_length", "max_length", "pattern", "enum")
        for key in string_only:
            if getattr(self, key) is not None and self.type != "string":
                raise ValueError(f"{key} is for string fields, not {self.type}")
        for key in ("minimum", "maximum"):
            if getattr(self, key) is not None and self.type not in ("integer", "number"):
                raise ValueError(f"{key} is for integer and number fields, not {self.type}")
        for key in ("min_items", "max_items"):
            if getattr(self, key) is not None and self.type != "list":
                raise ValueError(f"{key} is for list fields, not {self.type}")
        if self.enum is not None and (self.min_length, self.max_length, self.pattern) != (None, None, None):
            raise ValueError("enum fixes the values: drop min_length, max_length and pattern")
        if self.type == "integer" and any(
            v is not None and not float(v).is_integer() for v in (self.minimum, self.maximum)
        ):
            raise ValueError("an integer field's minimum and maximum are whole numbers")
        if (self.type == "list") != (self.items is not None):
            raise ValueError("a list field needs items (the type of its elements)" if self.type == "list" else
                             "items is for list fields")  # fmt: skip
        for low, high in (("min_length", "max_length"), ("minimum", "maximum"), ("min_items", "max_items")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) is more than {high} ({b})")
        return self

    @property
    def optional(self) -> bool:
        return "default" in self.model_fields_set


class OutputSpec(Strict):
    """A structured answer: a JSON object with these fields, validated (and repaired once) before use."""

    name: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")  # the schema's name; default: the step's
    fields: dict[str, FieldSpec] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"field name {name!r}: use lower-case letters, digits and _ (a letter first)")
            if hasattr(BaseModel, name) or name.startswith("model_"):  # the answer is a pydantic model
                raise ValueError(f"field name {name!r} is taken by the answer's own methods: call it otherwise")
        return value


class PromptSpec(Strict):
    """One prompt: what is sent to a model, to which, and what must come back."""

    template: str = Field(min_length=1)
    output: OutputSpec | None = None  # none: a free-text answer
    model: str = DEFAULT_MODEL
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)  # none: the endpoint's setting (0.7)
    max_tokens: int | None = Field(None, ge=1, le=200_000)  # none: the kind's default


class StepSpec(BaseModel):
    """A step: its name (the key of its output), its kind, its prompt (for kinds that have one at the
    step's level) and the kind's own options (validated by the kind: agents/steps)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    name: str = Field(pattern=_NAME)
    kind: str = Field(min_length=1)
    template: str | None = Field(None, min_length=1)
    output: OutputSpec | None = None
    model: str = DEFAULT_MODEL
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1, le=200_000)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def prompt(self) -> PromptSpec | None:
        """The step's own prompt, when it has a template."""
        if self.template is None:
            return None
        return PromptSpec(
            template=self.template,
            output=self.output,
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )


class ModelAlias(Strict):
    """A named endpoint a step's `model` can point at; what it leaves out is the run's own endpoint's."""

    base_url: str | None = Field(None, max_length=2000)
    model: str | None = Field(None, min_length=1, max_length=200)
    # the variable holding its key. Only SWARM_KEY_… variables: a recipe is a file people share, and one
    # that names OPENAI_API_KEY (or any secret) beside a base_url of its choosing would send it there
    api_key_env: str | None = None
    max_concurrency: int | None = Field(None, ge=1, le=1024)

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^\s/]+", value):
            raise ValueError(f"{value[:100]!r} is not an http(s) URL (an OpenAI-compatible API ends in /v1)")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _ours(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"SWARM_KEY_[A-Z0-9_]+", value):
            raise ValueError(
                f"{value!r}: a recipe reads keys only from variables named SWARM_KEY_… (set SWARM_KEY_NAME "
                "yourself), so that a shared recipe cannot send your other secrets to a host of its choosing"
            )
        return value


class RecipeSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    # what the conversations are to be in: the `language` quality check holds them to it (ISO 639-1)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    models: dict[str, ModelAlias] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _aliases(cls, value: dict[str, ModelAlias]) -> dict[str, ModelAlias]:
        for name in value:
            if name == DEFAULT_MODEL:
                raise ValueError(f"{DEFAULT_MODEL!r} is the run's own endpoint (--base-url); name yours otherwise")
            if not re.match(_NAME, name):
                raise ValueError(f"alias {name!r}: use lower-case letters, digits and _ (a letter first)")
        return value
