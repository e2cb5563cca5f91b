"""Structured outputs: asking for JSON that fits a pydantic model, and reading it back.

Three ways to ask, tried in this order until the endpoint accepts one (the one that worked is
remembered per endpoint): `json_schema` (OpenAI, vLLM), `json_object` with the schema alongside
(llama.cpp's server constrains decoding to it), and plain instructions with the schema in the prompt.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

MODES = ("json_schema", "json_object", "instructions")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Drop reasoning blocks (<think>…</think>) that some models put before the answer."""
    return _THINK.sub("", text).strip()


@functools.cache
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, built once per model: pydantic takes ~0.7 ms to build it, every call
    needs it, and nothing downstream changes it."""
    return model.model_json_schema()


def response_format(mode: str, model: type[BaseModel]) -> dict[str, Any] | None:
    schema = schema_of(model)
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema, "strict": False}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def instructions(model: type[BaseModel]) -> str:
    return "Answer with one JSON object and nothing else, matching this JSON schema:\n" + json.dumps(
        schema_of(model), ensure_ascii=False
    )


def parse(text: str, model: type[BaseModel]) -> BaseModel:
    """The model from the answer's JSON; raises ValueError (invalid JSON) or ValidationError."""
    cleaned = strip_reasoning(text)
    decoder = json.JSONDecoder(strict=False)  # raw newlines in strings: small models write them
    start = cleaned.find("{")
    if start < 0:
        raise ValueError("the answer is not JSON")
    try:
        # the first JSON object; text a model adds after it is not part of the answer
        data, _ = decoder.raw_decode(cleaned[start:])
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not valid JSON: {exc.msg}") from None
    return model.model_validate(data)


def describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()[:8])
    return str(error)
