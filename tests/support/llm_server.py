"""An OpenAI-compatible chat-completions server for tests (127.0.0.1 only), that the real openai
client talks to: plain and structured answers (json_schema, or llama.cpp-style json_object + schema),
usage figures, a fixed latency, and faults injected one request at a time.

    with LLMServer(latency=0.05) as server:
        server.faults.extend(["429", "500"])      # the next two requests fail, then normal answers
        base_url = server.base_url                 # http://127.0.0.1:PORT/v1

Faults: "429" (Retry-After: 1), "500", "401", "timeout" (no answer for `hang` seconds), "invalid_json",
"schema_violation", "length" (finish_reason length), "think" (a <think> block before the answer).

Faults of a broken or hostile endpoint, all with HTTP 200 unless said: "not_json" (an HTML page),
"error_200" (an {"error": …} object), "no_choices" (choices []), "tool_call" (content null and a tool
call), "drip" (the answer a byte every `drip` seconds), "huge" (a body of `huge_bytes`, Content-Length
declared), "huge_chunked" (the same, chunked: no length known beforehand), "huge_error" (a 500 whose
chunked body is `huge_bytes`), "gzip_bomb" (a gzip body of a few KB that inflates to `huge_bytes`),
"400_verbose" (a 400 whose message is a megabyte), "overlong_usage" (completion_tokens 50 times
max_tokens), "overlong_text" (text 50 characters a token of max_tokens, no usage).

With numbered sources in its system prompt, the assistant answers from them, citing each (see
answer_from_sources), and a `summary` field is made of the conversation's words: a test run's
conversations pass the quality checks. POST /v1/embeddings answers with hashed bags of words. `models_fault`
answers GET /models with "not_json" or "huge". `body_bytes_sent` counts the bytes of the bodies the
server got out before the client hung up.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from agents.sample_site.loopback import LoopbackServer, OwnedHandler


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


_HEADER = re.compile(r"^\[(\d{1,3})\] .* — \S+$")
_SENTENCE = re.compile(r"[^.!?]{20,300}[.!?]")
_WORD = re.compile(r"[A-Za-z]{4,}")


def answer_from_sources(system: str, turn: int) -> str | None:
    """What a grounded assistant says: the `turn`-th sentence of the first two numbered sources of the
    prompt, each cited — so a test run's conversations pass the quality checks. None without sources."""
    texts: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in system.splitlines():
        header = _HEADER.match(line)
        if header:
            current = texts.setdefault(int(header.group(1)), [])
        elif line.startswith("SOURCES ") or line.startswith("<<<"):
            current = None
        elif current is not None:
            current.append(line)
    said = []
    for number in sorted(texts)[:2]:
        found = _SENTENCE.findall(" ".join(texts[number]))
        if found:
            sentence = found[turn % len(found)].strip()
            said.append(f"{sentence[:-1]} [{number}]{sentence[-1]}")  # the citation before the full stop
    return " ".join(said) or None


def summary_of(messages: list[dict[str, Any]]) -> str:
    """A two-sentence summary made of the words the assistant said in the conversation the prompt quotes."""
    prompt = str(messages[-1].get("content", "")) if messages else ""
    quoted = prompt.split("\nASSISTANT: ", 1)[1] if "\nASSISTANT: " in prompt else ""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(quoted)))[:4] or ["nothing", "much", "said"]
    return f"The conversation covered {' and '.join(words[:2])}. The assistant explained {' '.join(words[2:]) or 'it'}."


def question_of(messages: list[dict[str, Any]]) -> str | None:
    """A user simulator's question made of its persona's words, other words each turn (so a test run's
    conversations differ from each other as their personas do, and no turn repeats the one before)."""
    prompt = str(messages[-1].get("content", "")) if messages else ""
    if "Role-play this person:" not in prompt:
        return None
    persona = prompt.split("Role-play this person:", 1)[1].strip().split("\n", 1)[0]
    turn = prompt.count("\nUSER: ") + prompt.startswith("USER: ")
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(persona) if len(w) > 4))
    picked = words[turn * 3 : turn * 3 + 3] or words[:3] or ["this"]
    return f"What do the pages say about {', '.join(picked)} for someone like me?"


def embedding(text: str, dimensions: int = 64) -> list[float]:
    """A deterministic unit vector of a text's hashed words: similar texts get similar vectors."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest[:3], "big") % dimensions] += 1.0 if digest[3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class LLMServer(LoopbackServer):
    def __init__(
        self, *, latency: float = 0.0, json_schema: bool = True, hang: float = 5.0, api_key: str | None = None
    ):
        super().__init__()
        self.latency, self.json_schema, self.hang = latency, json_schema, hang
        self.api_key = api_key  # when set, any other bearer token is refused with a 401, as OpenAI does
        self.drip = 1.0  # seconds between the bytes of a "drip" answer
        self.huge_bytes = 100 * 1024 * 1024
        self.body_bytes_sent = 0
        self.models_fault: str | None = None  # "not_json" or "huge": how GET /models is answered
        self.faults: deque[str] = deque()
        # False: the assistant echoes the user (and names [1] and [2]); the summary is the schema's example
        self.grounded = True
        self.embeddings = True  # whether POST /v1/embeddings answers (a hashed bag of words) or is a 404
        # schema name → how many more structured answers of that schema violate it ({"Metadata": 4})
        self.schema_faults: dict[str, int] = {}
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
            if isinstance(value, dict) and "summary" in value and self.grounded:
                value["summary"] = summary_of(body["messages"])
            if isinstance(value, dict) and "message" in value and self.grounded:
                value["message"] = question_of(body["messages"]) or value["message"]
            if isinstance(value, dict):
                value.update({k: v for k, v in self.overrides.items() if k in value})
            name = (fmt.get("json_schema") or {}).get("name", "")
            with self._lock:
                if self.schema_faults.get(name, 0) > 0:
                    self.schema_faults[name] -= 1
                    fault = "schema_violation"
            if fault == "schema_violation":
                value = {"unexpected": True}
            content = json.dumps(value)
        else:
            last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
            system = "\n".join(str(m.get("content", "")) for m in body["messages"] if m["role"] == "system")
            turn = sum(m["role"] == "assistant" for m in body["messages"])
            content = (answer_from_sources(system, turn) if self.grounded else None) or f"Echo: {str(last)[:80]}"
            if not self.grounded and "[1] " in system:
                content += " As the first source explains [1], and the second adds [2]."
        if fault == "invalid_json":
            content = "this is { not json"
        if fault == "length":
            content, finish = content[: max(1, len(content) // 2)], "length"
        if fault == "think":
            content = "<think>the user wants something; let me reason</think>\n" + content
        max_tokens = int(body.get("max_tokens") or 1024)
        if fault == "overlong_text":
            content = "word " * (max_tokens * 10)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4 + 1
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(content) // 4 + 1,
            "total_tokens": prompt_tokens + len(content) // 4 + 1,
        }
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if fault == "overlong_usage":
            usage["completion_tokens"] = max_tokens * 50
        if fault == "tool_call":
            message["content"], finish = None, "tool_calls"
            call = {"name": "search_web", "arguments": json.dumps({"query": "beekeeping"})}
            message["tool_calls"] = [{"id": "call_1", "type": "function", "function": call}]
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        if fault == "overlong_text":
            del payload["usage"]
        if fault == "no_choices":
            payload["choices"] = []
        if fault == "error_200":
            payload = {"error": {"message": "The model is overloaded, try again later", "type": "server_error"}}
        return 200, payload, {}


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

    def _send_body(self, status: int, headers: dict[str, str], chunks: Iterator[bytes], *, chunked: bool) -> None:
        """A body written piece by piece (counted in `body_bytes_sent`) until it ends or the client hangs up."""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                with self.owner._lock:
                    self.owner.body_bytes_sent += len(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client refused the rest: what the hostile faults are for
            self.close_connection = True

    def _hostile(self, fault: str, body: dict[str, Any]) -> bool:
        """Answer with one of the faults that break the body itself; False for any other fault."""
        owner = self.owner
        json_type = {"Content-Type": "application/json"}
        if fault == "not_json":
            page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            headers = {"Content-Type": "text/html", "Content-Length": str(len(page))}
            self._send_body(200, headers, iter([page]), chunked=False)
        elif fault == "drip":
            _, payload, _ = owner.answer(body, None)
            data = json.dumps(payload).encode()

            def drip() -> Iterator[bytes]:
                for i in range(len(data)):
                    if i:
                        time.sleep(owner.drip)
                    yield data[i : i + 1]

            self._send_body(200, {**json_type, "Content-Length": str(len(data))}, drip(), chunked=False)
        elif fault in ("huge", "huge_chunked", "huge_error"):
            piece = b"x" * 65536
            head = b'{"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "'
            count = max(1, owner.huge_bytes // len(piece))
            pieces = (head if i == 0 else piece for i in range(count))
            if fault == "huge":
                length = str(len(head) + (count - 1) * len(piece))
                self._send_body(200, {**json_type, "Content-Length": length}, pieces, chunked=False)
            else:
                self._send_body(500 if fault == "huge_error" else 200, json_type, pieces, chunked=True)
        elif fault == "gzip_bomb":
            _, payload, _ = owner.answer(body, None)
            payload["choices"][0]["message"]["content"] = " " * owner.huge_bytes
            data = gzip.compress(json.dumps(payload).encode(), compresslevel=9)
            headers = {**json_type, "Content-Encoding": "gzip", "Content-Length": str(len(data))}
            self._send_body(200, headers, iter([data]), chunked=False)
        else:
            return False
        return True

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
        if self.path.rstrip("/") == "/v1/models" and self.owner.models_fault:
            self._hostile(self.owner.models_fault, {"messages": []})
        elif self.path.rstrip("/") == "/v1/models":
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
        if self.path.rstrip("/") == "/v1/embeddings" and owner.embeddings:
            texts = body.get("input") or []
            texts = [texts] if isinstance(texts, str) else texts
            data = [{"object": "embedding", "index": i, "embedding": embedding(str(t))} for i, t in enumerate(texts)]
            tokens = sum(len(str(t)) for t in texts) // 4 + 1
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            self._send(200, {"object": "list", "data": data, "model": body.get("model", "test-model"), "usage": usage})
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        fault = owner.next_fault()
        if owner.latency:
            time.sleep(owner.latency)
        if fault == "timeout":
            time.sleep(owner.hang)
        if fault is not None and self._hostile(fault, body):
            return
        if fault == "429":
            self._send(
                429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, {"Retry-After": "1"}
            )
        elif fault == "400_verbose":  # an error whose message runs to a megabyte
            self._send(400, {"error": {"message": "bad request: " + "?" * 2**20, "type": "invalid_request_error"}})
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
