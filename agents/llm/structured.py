"""Structured outputs: asking for JSON that fits a pydantic model, and reading it back.

Three ways to ask, tried in this order until the endpoint accepts one (the one that worked is
remembered per endpoint): `json_schema` (OpenAI, vLLM), `json_object` with the schema alongside
(llama.cpp's server constrains decoding to it), and plain instructions with the schema in the prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

MODES = ("json_schema", "json_object", "instructions")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def strip_reasoning(text: str) -> str:
    """Drop reasoning blocks (<think>…</think>) that some models put before the answer."""
    return _THINK.sub("", text).strip()


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
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
    fenced = _FENCE.match(cleaned)
    if fenced:
        cleaned = fenced.group(1)
    try:
        data = json.loads(cleaned, strict=False)  # raw newlines in strings: small models write them
    except json.JSONDecodeError:
        start, end = cleaned.find("{"), cleaned.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("the answer is not JSON") from None
        try:
            data = json.loads(cleaned[start : end + 1], strict=False)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the answer is not valid JSON: {exc.msg}") from None
    return model.model_validate(data)


def describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()[:8])
    return str(error)
