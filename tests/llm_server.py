"""An OpenAI-compatible chat-completions server for tests (127.0.0.1 only), that the real openai
client talks to: plain and structured answers (json_schema, or llama.cpp-style json_object + schema),
usage figures, a fixed latency, and faults injected one request at a time.

    with LLMServer(latency=0.05) as server:
        server.faults.extend(["429", "500"])      # the next two requests fail, then normal answers
        base_url = server.base_url                 # http://127.0.0.1:PORT/v1

Faults: "429" (Retry-After: 1), "500", "401", "timeout" (no answer for `hang` seconds), "invalid_json",
"schema_violation", "length" (finish_reason length), "think" (a <think> block before the answer).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import LoopbackServer, OwnedHandler


def fake_value(schema: dict[str, Any], defs: dict[str, Any], key: str = "x") -> Any:
    """A deterministic value that satisfies a (pydantic-made) JSON schema."""
    if "$ref" in schema:
        return fake_value(defs[schema["$ref"].rsplit("/", 1)[1]], defs, key)
    if "anyOf" in schema:
        return fake_value(schema["anyOf"][0], defs, key)
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("examples"):
        return schema["examples"][0]
    kind = schema.get("type", "string")
    if kind == "object":
        return {name: fake_value(sub, defs, name) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1)
        return [fake_value(schema.get("items", {}), defs, f"{key} {i + 1}") for i in range(count)]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    text = f"{key.replace('_', ' ')} value"
    return text + " x" * max(0, (schema.get("minLength", 0) - len(text)) // 2 + 1) if schema.get("minLength") else text


class LLMServer(LoopbackServer):
    def __init__(
        self, *, latency: float = 0.0, json_schema: bool = True, hang: float = 5.0, api_key: str | None = None
    ):
        super().__init__()
        self.latency, self.json_schema, self.hang = latency, json_schema, hang
        self.api_key = api_key  # when set, any other bearer token is refused with a 401, as OpenAI does
        self.faults: deque[str] = deque()
        self.overrides: dict[str, Any] = {}  # merged into every structured answer (e.g. {"done": True})
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def answer(self, body: dict[str, Any], fault: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema" and not self.json_schema:
            return (
                400,
                {
                    "error": {
                        "message": "response_format type json_schema is not supported",
                        "type": "invalid_request_error",
                        "param": "response_format",
                    }
                },
                {},
            )
        schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
        finish = "stop"
        if schema is not None:
            value = fake_value(schema, schema.get("$defs", {}))
            if isinstance(value, dict):
                value.update({k: v for k, v in self.overrides.items() if k in value})
            if fault == "schema_violation":
                value = {"unexpected": True}
            content = json.dumps(value)
        else:
            last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
            content = f"Echo: {str(last)[:80]}"
            if any("[1] " in str(m.get("content", "")) for m in body["messages"] if m["role"] == "system"):
                content += " As the first source explains [1], and the second adds [2]."
        if fault == "invalid_json":
            content = "this is { not json"
        if fault == "length":
            content, finish = content[: max(1, len(content) // 2)], "length"
        if fault == "think":
            content = "<think>the user wants something; let me reason</think>\n" + content
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4 + 1
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(content) // 4 + 1,
            "total_tokens": prompt_tokens + len(content) // 4 + 1,
        }
        return (
            200,
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "test-model"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
                ],
                "usage": usage,
            },
            {},
        )


class _Handler(OwnedHandler):
    owner: LLMServer

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _refused_key(self) -> bool:
        expected = self.owner.api_key
        if expected is None or self.headers.get("Authorization") == f"Bearer {expected}":
            return False
        error = {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}
        self._send(401, {"error": error})
        return True

    def do_GET(self) -> None:
        if self._refused_key():
            return
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        owner = self.owner
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        with owner._lock:
            owner.requests.append({"body": body, "headers": dict(self.headers.items()), "time": time.monotonic()})
        if self._refused_key():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        fault = owner.next_fault()
        if owner.latency:
            time.sleep(owner.latency)
        if fault == "timeout":
            time.sleep(owner.hang)
        if fault == "429":
            self._send(
                429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, {"Retry-After": "1"}
            )
        elif fault == "500":
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
        elif fault == "401":
            self._send(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
        else:
            status, payload, headers = owner.answer(body, fault)
            self._send(status, payload, headers)


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


LLMServer.handler = _Handler
