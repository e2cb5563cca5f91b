"""Prompt templates: Jinja2 in its sandbox, strict about names.

    template = compile_template(text)
    template.render(persona=PersonaView("p_1", "A nurse…", {"occupation": "nurse"}), …)

Sandboxed, because a recipe is a file people share: a template can read the variables it is given and
call the filters Jinja ships, not reach Python's internals. Strict (StrictUndefined), because a typo in a
variable name must be an error, not an empty string sent to the model on every call; a persona
attribute that some personas lack is written `{{ persona.country | default('') }}`.

Web text reaches a template only fenced (`sources`, `digest`, `transcript` are fenced by the step that
made them, agents/fence.py): whatever a template does with them, a page cannot pass for the prompt.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment


class PersonaView(Mapping[str, Any]):
    """A persona as templates see it: `{{ persona }}` is its text, `{{ persona.occupation }}` (or
    `{{ persona['occupation'] }}`) one of its attributes, `{{ persona.id }}` its id."""

    def __init__(self, persona_id: str, text: str, attributes: Mapping[str, Any] | None = None):
        self.id, self.text = persona_id, text
        self.attributes = dict(attributes or {})

    def __str__(self) -> str:
        return self.text

    def __getitem__(self, key: str) -> Any:
        return self.attributes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)


@functools.cache
def environment() -> ImmutableSandboxedEnvironment:
    # immutable: a template reads the outputs and attributes it is given, it cannot change them for the
    # steps after it; keep_trailing_newline: a template renders to exactly its text, last line break included
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


class TemplateProblem(ValueError):
    """A template that does not compile or render; `line` is within the template (1-based) when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def compile_template(text: str) -> jinja2.Template:
    try:
        return environment().from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax: {exc.message}", exc.lineno) from None


def evaluate(expression: str, values: Mapping[str, Any]) -> Any:
    """A Jinja expression's value (`2 if persona.age | int > 60 else 4`), in the same sandbox."""
    try:
        return environment().compile_expression(expression, undefined_to_none=False)(**values)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"expression syntax: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"expression {expression!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"expression {expression!r}: {type(exc).__name__}: {exc}") from None


def check_expression(expression: str) -> None:
    try:
        environment().compile_expression(expression)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"expression syntax: {exc.message}") from None


def variables(text: str) -> set[str]:
    """The top-level names a template reads (its own `{% set %}` and loop names aside)."""
    try:
        return set(meta.find_undeclared_variables(environment().parse(text)))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax: {exc.message}", exc.lineno) from None


def render(template: jinja2.Template, values: Mapping[str, Any]) -> str:
    try:
        return template.render(values)
    except jinja2.UndefinedError as exc:
        raise TemplateProblem(f"template: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:  # what a filter raises on a bad value
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}") from None
