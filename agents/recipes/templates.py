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
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
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


MAX_CHARS = 1_000_000  # what one operation in a template may make: a prompt is thousands of characters
_WIDTH = re.compile(r"%[-+ #0]*(\d+)(?:\.(\d+))?")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, also bounded in size: a shared recipe's `{{ "x" * 10**9 }}` or
    `{{ "%09999999d" % 1 }}` is an error, not gigabytes. Immutable: a template reads the outputs and
    attributes it is given and cannot change them for the steps after it."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and len(seq) * count > MAX_CHARS:
                    raise SecurityError(f"a template may not make more than {MAX_CHARS:,} items at once")
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints and abs(left) > 1 and right * max(1, abs(left).bit_length()) > 4096:
            raise SecurityError("a template may not raise to so large a power")
        widths = _WIDTH.findall(left) if operator == "%" and isinstance(left, str) else []
        if any(int(n or 0) > MAX_CHARS for pair in widths for n in pair):
            raise SecurityError(f"a template may not format wider than {MAX_CHARS:,} characters")
        return super().call_binop(context, operator, left, right)


def _bounded(filter_: Any, argument: int) -> Any:
    """A filter whose `argument`-th parameter is a width (center, indent, wordwrap), refused past MAX_CHARS."""

    def run(*args: Any, **kwargs: Any) -> Any:
        values = list(args[argument : argument + 1]) + [v for v in kwargs.values() if isinstance(v, int)]
        if any(isinstance(v, int) and v > MAX_CHARS for v in values):
            raise SecurityError(f"a template may not make more than {MAX_CHARS:,} characters at once")
        return filter_(*args, **kwargs)

    return run


@functools.cache
def environment() -> Sandbox:
    # keep_trailing_newline: a template renders to exactly its text, last line break included;
    # optimized=False: constant expressions are not folded at compile time, where no bound applies
    env = Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, optimized=False)
    env.globals.pop("lipsum", None)  # lorem ipsum of any length: nothing a prompt needs
    for name, argument in (("center", 1), ("indent", 1), ("wordwrap", 1)):
        env.filters[name] = _bounded(env.filters[name], argument)
    return env


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
    except (SyntaxError, RecursionError, MemoryError):  # blocks nested past what Python compiles
        raise TemplateProblem("template: nested too deeply") from None


def evaluate(expression: str, values: Mapping[str, Any]) -> Any:
    """A Jinja expression's value (`2 if persona.age | int > 60 else 4`), in the same sandbox."""
    try:
        return environment().compile_expression(expression, undefined_to_none=False)(**values)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"expression syntax: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"expression {expression!r}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"expression {expression!r}: {type(exc).__name__}: {_short(exc)}") from None
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise TemplateProblem(f"expression {expression!r}: {type(exc).__name__}") from None


def check_expression(expression: str) -> set[str]:
    """The names an expression reads; raises TemplateProblem when it does not compile."""
    try:
        environment().compile_expression(expression)
        return variables("{{ " + expression + " }}")
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"expression syntax: {exc.message}") from None
    except (SyntaxError, RecursionError, MemoryError):
        raise TemplateProblem("expression: nested too deeply") from None


def variables(text: str) -> set[str]:
    """The top-level names a template reads (its own `{% set %}` and loop names aside)."""
    try:
        return set(meta.find_undeclared_variables(environment().parse(text)))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax: {exc.message}", exc.lineno) from None
    except (SyntaxError, RecursionError, MemoryError):
        raise TemplateProblem("template: nested too deeply") from None


def render(template: jinja2.Template, values: Mapping[str, Any]) -> str:
    try:
        return template.render(values)
    except jinja2.UndefinedError as exc:
        raise TemplateProblem(f"template: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"template: {type(exc).__name__}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:  # what a filter raises on a bad value
        raise TemplateProblem(f"template: {type(exc).__name__}: {_short(exc)}") from None
    except (RecursionError, MemoryError) as exc:  # a macro calling itself, …
        raise TemplateProblem(f"template: {type(exc).__name__}: it does not end, or grows too large") from None


def _short(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"
