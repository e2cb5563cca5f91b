"""Which field holds the persona text, and which the source's id, for the public datasets' layouts.

Recognised without flags: the rules in LAYOUTS in order (these, then any an installed package adds through
the entry-point group `persona_swarm.layouts`, docs/extending.md), then the generic `persona` layout;
`--layout NAME` applies one rule and says so when the file does not fit it.

| layout                  | text field      | id field | how it is recognised                               |
|-------------------------|-----------------|----------|----------------------------------------------------|
| personahub_synthesized  | `input persona` | —        | the key `input persona` (PersonaHub's synthesized sets) |
| nemotron                | `persona`       | `uuid`   | `persona` plus Nemotron-Personas columns            |
| finepersonas            | `persona`       | `id`     | `id`, `persona` and `labels`                        |
| personahub_elite        | `persona`       | —        | `persona` plus `… domain (top 1 percent)` columns   |
| persona                 | `persona`       | `id`/`uuid`/`persona_id` if present | a `persona` field          |
| tinytroupe              | built from the nested `persona` object | — | a `.agent.json` / `{"type": "TinyPerson"}` |
| text                    | the line        | —        | plain-text files, one persona per line              |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from persona_hub.errors import NoTextField
from storage.registry import Registry, UnknownName

log = logging.getLogger(__name__)

NEMOTRON_MARKERS = {"professional_persona", "skills_and_expertise_list", "hobbies_and_interests_list"}
ELITE_MARKER = "general domain (top 1 percent)"
GENERIC_ID_FIELDS = ("id", "uuid", "persona_id")


@dataclass(frozen=True)
class Layout:
    name: str
    text_field: str
    id_field: str | None


# A layout rule: the Layout of records with these keys, or None when it does not recognise them.
LayoutRule = Callable[[set[str]], "Layout | None"]
LAYOUTS: Registry[LayoutRule] = Registry("persona_swarm.layouts", "persona layout")


@LAYOUTS.register("personahub_synthesized")
def personahub_synthesized(have: set[str]) -> Layout | None:
    return Layout("personahub_synthesized", "input persona", None) if "input persona" in have else None


@LAYOUTS.register("nemotron")
def nemotron(have: set[str]) -> Layout | None:
    if "persona" in have and have & NEMOTRON_MARKERS:
        return Layout("nemotron", "persona", "uuid" if "uuid" in have else None)
    return None


@LAYOUTS.register("finepersonas")
def finepersonas(have: set[str]) -> Layout | None:
    return Layout("finepersonas", "persona", "id") if {"persona", "id", "labels"} <= have else None


@LAYOUTS.register("personahub_elite")
def personahub_elite(have: set[str]) -> Layout | None:
    return Layout("personahub_elite", "persona", None) if {"persona", ELITE_MARKER} <= have else None


@LAYOUTS.register("persona")
def persona(have: set[str]) -> Layout | None:
    """Any record with a `persona` field: the last resort, tried after every other rule."""
    if "persona" not in have:
        return None
    return Layout("persona", "persona", next((f for f in GENERIC_ID_FIELDS if f in have), None))


def detect(
    keys: Iterable[str],
    *,
    text_field: str | None = None,
    id_field: str | None = None,
    layout: str | None = None,
    source: str = "file",
) -> Layout:
    """Choose the layout for records with these keys; explicit fields override detection."""
    present = list(dict.fromkeys(keys))
    have = set(present)
    if text_field is not None:
        if text_field not in have:
            raise NoTextField(_missing(source, f"{{--text_field}} {text_field!r} is not a field", present))
        if id_field is not None and id_field not in have:
            raise NoTextField(_missing(source, f"{{--id_field}} {id_field!r} is not a field", present))
        return Layout("custom", text_field, id_field)
    found = _named(layout, have, source, present) if layout else _detect(have)
    if found is None:
        raise NoTextField(_missing(source, "no persona text field (persona / input persona)", present))
    if id_field is not None:
        if id_field not in have:
            raise NoTextField(_missing(source, f"{{--id_field}} {id_field!r} is not a field", present))
        return Layout(found.name, found.text_field, id_field)
    return found


def _named(name: str, have: set[str], source: str, present: list[str]) -> Layout:
    try:
        rule = LAYOUTS.get(name)
    except UnknownName as exc:
        raise NoTextField(f"{{--layout}}: {exc}") from None
    try:
        found = _checked(name, rule, have)
    except ValueError as exc:
        raise NoTextField(f"{{--layout}}: {exc}") from None
    if found is None:
        raise NoTextField(_missing(source, f"the records do not have the fields of the {name!r} layout", present))
    return found


def _checked(name: str, rule: LayoutRule, have: set[str]) -> Layout | None:
    """The rule's answer, or ValueError saying how a (plugin's) rule failed."""
    try:
        found = rule(have)
    except Exception as exc:
        raise ValueError(f"the layout rule {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if found is not None and not isinstance(found, Layout):
        raise ValueError(f"the layout rule {name!r} answered {type(found).__name__}, not a Layout or None")
    return found


def _detect(have: set[str]) -> Layout | None:
    rules = [(name, rule) for name, rule in LAYOUTS.items() if name != "persona"]
    for name, rule in [*rules, ("persona", persona)]:  # the generic layout last: a package's comes before it
        try:
            found = _checked(name, rule, have)
        except ValueError as exc:  # a broken rule (a package's) must not stop every import: skipped, said
            log.warning("%s; skipped", exc)
            continue
        if found is not None:
            return found
    return None


def _missing(source: str, what: str, fields: list[str]) -> str:
    listed = ", ".join(repr(f) for f in fields[:40]) or "none"
    return (
        f"{source}: {what}. Fields found: {listed}. "
        "Name the text column with {--text_field} (and the id column with {--id_field})."
    )


# -- TinyTroupe ------------------------------------------------------------------------------------


def _words(value: Any) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k.replace('_', ' ')}: {_words(v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, (list, tuple)):
        return ", ".join(_words(v) for v in value if v not in (None, ""))
    return str(value)


def tinytroupe_record(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten a TinyTroupe agent spec into one persona record: a readable text plus its fields.

    TinyTroupe has no single text field; the text is written from the nested `persona` object in a
    fixed order (who, work, education, interests, skills, goals, style, beliefs, facts) so the same
    spec always gives the same text, and every field is kept in the attributes as well.
    """
    persona = spec.get("persona")
    if not isinstance(persona, Mapping):
        raise NoTextField("TinyTroupe spec without a nested 'persona' object")
    parts: list[str] = []
    who = ", ".join(str(persona[k]) for k in ("name", "age", "nationality") if persona.get(k) not in (None, ""))
    if who:
        parts.append(who + (f", lives in {persona['residence']}" if persona.get("residence") else "") + ".")
    occupation = persona.get("occupation")
    if isinstance(occupation, Mapping):
        title = occupation.get("title", "")
        org = occupation.get("organization")
        line = f"Works as {title}" + (f" at {org}" if org else "")
        if occupation.get("description"):
            line += f": {occupation['description']}"
        parts.append(line.rstrip(".") + ".")
    elif occupation:
        parts.append(f"Works as {occupation}.")
    labels = [
        ("education", "Education"),
        ("preferences", "Preferences"),
        ("skills", "Skills"),
        ("long_term_goals", "Goals"),
        ("style", "Style"),
        ("personality", "Personality"),
        ("beliefs", "Beliefs"),
        ("other_facts", "Other facts"),
    ]
    for key, label in labels:
        if persona.get(key) not in (None, "", [], {}):
            parts.append(f"{label}: {_words(persona[key])}.")
    record: dict[str, Any] = {"persona": " ".join(parts)}
    for key, value in persona.items():
        record[key] = value
    if isinstance(occupation, Mapping):  # a flat, filterable occupation; the details stay alongside
        record["occupation"] = occupation.get("title")
        record["occupation_detail"] = dict(occupation)
    record["tinytroupe_type"] = spec.get("type")
    return record
