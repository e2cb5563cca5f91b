"""Loading a recipe: parse the TOML, validate every step against its kind, compile its templates —
and say every problem at once, each with its line and field.

    recipe = load("recipes/mine.toml")    # or a bundled name: "default", "attributes"
    recipe.hash                            # what runs and conversations record
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agents.recipes import lines, templates
from agents.recipes.spec import DEFAULT_MODEL, PromptSpec, RecipeSpec, StepSpec
from storage.errors import SwarmError
from storage.registry import UnknownName

HERE = Path(__file__).parent
DEFAULT = "default"
MAX_BYTES = 1_000_000  # a recipe is prompts and fields; a bigger file is a mistake, not a recipe


class RecipeError(SwarmError):
    """A recipe that cannot be used: every problem, each with its line and field where known."""

    reason = "bad_recipe"

    def __init__(self, source: str, problems: list[str]):
        problems = sorted(problems, key=_line_number)
        shown = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem{'s' * (len(problems) != 1)}\n{shown}")
        self.source, self.problems = source, problems


@dataclass(frozen=True)
class Recipe:
    spec: RecipeSpec
    text: str
    source: str  # the file, or `bundled:NAME`
    steps: tuple[Any, ...]  # agents.steps.base.StepKind instances, in order

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def hash(self) -> str:
        return text_hash(self.text)

    def aliases(self) -> set[str]:
        """The model aliases its prompts use."""
        return {p.spec.model for step in self.steps for p in step.prompts.values()}


def _line_number(problem: str) -> int:
    head = problem.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def bundled() -> dict[str, Path]:
    """The recipes that ship with the package, by name."""
    return {path.stem: path for path in sorted(HERE.glob("*.toml"))}


def load(name_or_path: str | Path) -> Recipe:
    """A bundled recipe by name, or a recipe file. A bare bundled name is always the bundled recipe;
    a file of that name in the working directory is `./NAME`."""
    shipped = bundled()
    if isinstance(name_or_path, str) and name_or_path in shipped:
        return _bundled(name_or_path)
    path = Path(name_or_path)
    source = str(path)
    try:
        if not path.is_file():  # a directory, a FIFO that would block, /dev/zero that never ends
            if not path.exists():
                names = ", ".join(shipped)
                raise RecipeError(source, [f"no such file, and no bundled recipe of that name ({names})"])
            raise RecipeError(source, ["not a regular file"])
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # read bounded: a file may grow, or lie about its size
    except OSError as exc:
        raise RecipeError(source, [f"cannot read it: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_BYTES:
        raise RecipeError(source, [f"the file is over {MAX_BYTES // 1000} kB: not a recipe"])
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not part of the TOML
    except UnicodeDecodeError as exc:
        raise RecipeError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    return parse(text, source)


@functools.cache
def _bundled(name: str) -> Recipe:
    path = bundled()[name]
    return parse(path.read_text(encoding="utf-8"), f"bundled:{name}")


def default() -> Recipe:
    return _bundled(DEFAULT)


def parse(text: str, source: str = "<recipe>") -> Recipe:
    """The recipe in `text`; raises RecipeError listing every problem found."""
    try:
        return _parse(text, source)
    except (RecursionError, MemoryError):
        raise RecipeError(source, ["nested too deeply (tables, lists or templates inside each other)"]) from None


def _parse(text: str, source: str) -> Recipe:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(source, [f"not valid TOML: {exc}"]) from None
    where = lines.key_lines(text)
    problems: list[str] = []
    # each step on its own first, so that one bad step does not hide the problems of the others
    raw_steps = data.get("steps")
    good: list[tuple[int, StepSpec]] = []
    first_bad: int | None = None
    if isinstance(raw_steps, list):
        for i, raw in enumerate(raw_steps):
            try:
                good.append((i, StepSpec.model_validate(raw)))
            except ValidationError as exc:
                problems += [_problem(where, ("steps", i, *e["loc"]), _message(e)) for e in exc.errors()]
                problems += _option_problems(raw, where, ("steps", i))
                first_bad = i if first_bad is None else first_bad
    checked_steps = bool(problems)
    try:
        # the steps already said their problems: the rest is checked over the good ones, in their places
        kept = [raw_steps[i] for i, _ in good] if isinstance(raw_steps, list) else raw_steps
        spec = RecipeSpec.model_validate({**data, "steps": kept} if checked_steps else data)
    except ValidationError as exc:
        problems += [
            _problem(where, e["loc"], _message(e))
            for e in exc.errors()
            if not (checked_steps and e["loc"][:1] == ("steps",))
        ]
        raise RecipeError(source, problems) from None
    indices = [i for i, _ in good] if checked_steps else list(range(len(spec.steps)))
    steps = _steps(spec, indices, text, where, problems, lenient_after=first_bad)
    if problems:
        raise RecipeError(source, problems)
    return Recipe(spec, text, source, tuple(steps))


def _option_problems(raw: Any, where: dict[lines.Path, int], at: lines.Path) -> list[str]:
    """The problems of a step's own options, for a step whose common keys already failed (so both show)."""
    from agents.steps import STEP_KINDS

    if not isinstance(raw, dict):
        return []
    try:
        kind = STEP_KINDS.get(str(raw.get("kind", "")))
    except UnknownName:
        return []
    extra = {k: v for k, v in raw.items() if k not in StepSpec.model_fields}
    try:
        kind.Options.model_validate(extra)
    except ValidationError as exc:
        return [_problem(where, (*at, *e["loc"]), _message(e)) for e in exc.errors()]
    return []


@functools.cache
def _known_keys() -> list[str]:
    """Every key a step may have: the common ones, and each registered kind's options (as written)."""
    from agents.steps import STEP_KINDS

    options = {f.alias or name for _, kind in STEP_KINDS.items() for name, f in kind.Options.model_fields.items()}
    return [*StepSpec.model_fields, *sorted(options)]


def _message(error: Any) -> str:
    """pydantic's message, with a likely spelling for an unknown key."""
    message = str(error["msg"]).removeprefix("Value error, ")
    key = error["loc"][-1] if error["loc"] else None
    if error.get("type") == "extra_forbidden" and isinstance(key, str):
        close = difflib.get_close_matches(key, _known_keys(), n=1)
        return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return message


def _steps(
    spec: RecipeSpec,
    indices: list[int],
    text: str,
    where: dict[lines.Path, int],
    problems: list[str],
    *,
    lenient_after: int | None = None,
) -> list[Any]:
    """Each step against its kind. Once a step has failed (`lenient_after`: the first that failed its
    common keys), what it would have given the steps after it (its kind, template variables) is not
    known, and is not held against them."""
    from agents.steps import COMMON_VARIABLES, STEP_KINDS, compile_prompt

    aliases = {DEFAULT_MODEL, *spec.models}
    seen_names: set[str] = set()
    seen_kinds: set[str] = set()
    earlier: dict[str, StepSpec] = {}
    available = set(COMMON_VARIABLES)
    built = []
    lenient = False
    for i, step in zip(indices, spec.steps, strict=True):
        at: lines.Path = ("steps", i)
        lenient = lenient or (lenient_after is not None and i > lenient_after)

        def say(loc: tuple[Any, ...], message: str, at: lines.Path = at) -> None:
            problems.append(_problem(where, (*at, *loc), message))

        if step.name in seen_names:
            say(("name",), f"a second step named {step.name!r}: names key the outputs, so each is used once")
        seen_names.add(step.name)
        try:
            kind = STEP_KINDS.get(step.kind)
        except UnknownName as exc:
            say(("kind",), str(exc))
            lenient, earlier[step.name] = True, step
            continue
        kind_name = step.kind.strip().lower()
        try:
            options: BaseModel = kind.Options.model_validate(step.options)
        except ValidationError as exc:
            for e in exc.errors():
                say(tuple(e["loc"]), _message(e))
            seen_kinds.add(kind_name)
            available |= kind.provides
            lenient, earlier[step.name] = True, step
            continue
        _prompt_rules(kind, step, say)
        for problem_loc, message in kind.check(step, options, earlier):
            say(problem_loc, message)
        for needed in kind.after:
            if needed not in seen_kinds and not lenient:
                say(("kind",), f"a step of kind {kind_name} needs a step of kind {needed} before it")
        seen_kinds.add(kind_name)
        compiled = {}
        for part, prompt in kind.prompt_specs(step, options).items():
            part_at = (part,) if part else ()
            if prompt.model not in aliases:
                say((*part_at, "model"), f"no model alias {prompt.model!r}: declare it under [models.{prompt.model}]")
            allowed = available | kind.part_variables(part)
            template_at = (*at, *part_at, "template")
            try:
                unknown = templates.variables(prompt.template) - allowed
                compiled[part] = compile_prompt(step.name, part, prompt)
            except templates.TemplateProblem as exc:
                line = _template_line(text, where, template_at, exc.line)
                problems.append(f"{'line ' + str(line) + ': ' if line else ''}{_dotted(template_at)}: {exc}")
                continue
            except (TypeError, ValueError) as exc:  # an output pydantic cannot build
                say((*part_at, "output"), f"cannot build this output: {exc}")
                continue
            for name in sorted(unknown if not lenient else ()):
                line = _template_line(text, where, template_at, _reads_at(prompt.template, name))
                problems.append(
                    f"{'line ' + str(line) + ': ' if line else ''}{_dotted(template_at)}: the template reads "
                    f"{{{{ {name} }}}}, which is not defined here; it may read: {', '.join(sorted(allowed))}"
                )
        for name, expression in kind.expressions(options).items():
            for unknown_name in sorted(templates.check_expression(expression) - available if not lenient else ()):
                say((name,), f"the expression reads {unknown_name!r}, which is not defined here")
        available |= kind.provides
        earlier[step.name] = step
        if not problems:
            built.append(kind(step, options, compiled))
    if "transcript" not in available and not lenient and lenient_after is None:
        problems.append("recipe: no step makes the conversation: add a step of kind converse")
    return built


def _reads_at(template: str, name: str) -> int | None:
    """The first line of `template` whose Jinja expression or statement reads `name`."""
    pattern = re.compile(r"(\{\{|\{%)[^}]*\b" + re.escape(name) + r"\b")
    return next((n for n, row in enumerate(template.splitlines(), 1) if pattern.search(row)), None)


def _prompt_rules(kind: Any, step: StepSpec, say: Any) -> None:
    own: PromptSpec | None = step.prompt()
    if kind.prompt == "none":
        for key in ("template", "output", "temperature", "max_tokens"):
            if getattr(step, key) is not None:
                say((key,), f"a step of kind {step.kind} has no prompt of its own: remove {key}")
        return
    if own is None:
        if kind.prompt == "required":
            say((), f"a step of kind {step.kind} needs a template")
        return
    if kind.output == "structured" and own.output is None:
        say((), f"a step of kind {step.kind} needs an output (the fields of its JSON answer)")
    if kind.output == "text" and own.output is not None:
        say(("output",), f"a step of kind {step.kind} answers in free text: remove its output")


def _template_line(text: str, where: dict[lines.Path, int], loc: lines.Path, inner: int | None) -> int | None:
    """The file line of a template's line `inner`. Only a multi-line string keeps the template's lines as
    the file's (one that opens with a line break starts on the next line); in a one-line string, with
    its `\\n` escapes, the key's line is what can be said."""
    start = lines.line_of(where, loc)
    if start is None or inner is None:
        return start
    opener = text.splitlines()[start - 1].rstrip()
    if opener.endswith(('"""', "'''")):
        return start + inner
    return start + inner - 1 if ('"""' in opener or "'''" in opener) else start


def _problem(where: dict[lines.Path, int], loc: tuple[Any, ...], message: str) -> str:
    line = lines.line_of(where, tuple(loc))
    return f"{'line ' + str(line) + ': ' if line else ''}{_dotted(loc)}: {message}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "recipe"
