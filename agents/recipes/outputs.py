"""A recipe's declared output → the pydantic model the LLM layer asks for and validates against.

The model's JSON schema is what the endpoint sees (json_schema mode, or the schema in the prompt), so
each declared constraint becomes a JSON-schema keyword: lengths, patterns, enums, ranges, list sizes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from agents.recipes.spec import FieldSpec, OutputSpec

_SCALARS: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def annotation(spec: FieldSpec) -> Any:
    """The type of one value, its own constraints included (a list's items carry theirs)."""
    if spec.type == "list":
        assert spec.items is not None
        return list[annotation(spec.items)]  # type: ignore[misc]
    if spec.enum:
        return Literal[tuple(spec.enum)]
    constraints = {
        key: value
        for key, value in (
            ("min_length", spec.min_length),
            ("max_length", spec.max_length),
            ("pattern", spec.pattern),
            ("ge", spec.minimum),
            ("le", spec.maximum),
        )
        if value is not None
    }
    base = _SCALARS[spec.type]
    if spec.type == "integer":
        constraints = {k: int(v) if k in ("ge", "le") else v for k, v in constraints.items()}
    return Annotated[base, Field(**constraints)] if constraints else base  # type: ignore[call-overload]


def field(spec: FieldSpec) -> tuple[Any, Any]:
    """(type, FieldInfo) for create_model: a list's sizes, the description, examples and default."""
    info: dict[str, Any] = {}
    if spec.min_items is not None:
        info["min_length"] = spec.min_items
    if spec.max_items is not None:
        info["max_length"] = spec.max_items
    if spec.description:
        info["description"] = spec.description
    if spec.examples is not None:
        info["examples"] = spec.examples
    kind = annotation(spec)
    if spec.optional:
        try:  # a default the field's own type refuses would be handed to the steps after as if answered
            TypeAdapter(kind).validate_python(spec.default, strict=True)
        except ValidationError as exc:
            raise ValueError(f"the default {spec.default!r} does not fit: {exc.errors()[0]['msg']}") from None
    return kind, Field(spec.default if spec.optional else ..., **info)


def model(output: OutputSpec, name: str) -> type[BaseModel]:
    """The pydantic model of a structured answer, named `output.name` or `name`."""
    fields: dict[str, Any] = {key: field(spec) for key, spec in output.fields.items()}
    return create_model(output.name or name, **fields)


def wrapped(item: type[BaseModel], key: str, count: int, name: str) -> type[BaseModel]:
    """An answer holding exactly `count` items under `key` (the count is part of the schema the model sees)."""
    fields: dict[str, Any] = {key: (list[item], Field(min_length=count, max_length=count))}  # type: ignore[valid-type]
    return create_model(name, **fields)


def camel(name: str) -> str:
    """A step name as a schema name: metadata → Metadata, user_turn → UserTurn."""
    return "".join(part.capitalize() for part in name.split("_"))
