"""One chat completion read off the wire, trusting nothing the endpoint sends: its body is capped in
size, and only an answer of the OpenAI shape, within the length it was asked for, comes out.

    http_client = openai.DefaultAsyncHttpxClient(event_hooks={"response": [body_cap(limit)]})
    …
    async with openai_client.chat.completions.with_streaming_response.create(...) as raw:
        answer = parse(await read_capped(raw.http_response, limit), raw.http_response)
    check_length(answer, max_tokens)

Every refusal is an LLMOutputError whose reason says which kind: `bad_response` (not JSON, an error
object, no choices, fields of the wrong kind), `too_large` (a body over the cap) or `too_long` (an
answer far beyond max_tokens).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError

try:  # the openai client's own HTTP library: httpx2 from openai 3 on, httpx before
    import httpx2 as openai_httpx
except ImportError:  # pragma: no cover
    import httpx as openai_httpx  # type: ignore[no-redef]

from agents.llm.errors import LLMOutputError, Status

# An answer is refused as too long past these multiples of max_tokens. Far beyond what an endpoint that
# honours max_tokens sends (at most max_tokens tokens, ~4 characters each in prose), so only one that
# ignores it is caught; generous, since a token of whitespace or punctuation runs can be much longer.
TOKENS_OVER = 4
CHARACTERS_PER_TOKEN = 32
_EXCERPT = 200  # characters of a refused body quoted in the error


@dataclass(frozen=True)
class Completion:
    content: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[str, ...]  # names of the functions the model called instead of answering


# Only the fields the client uses are checked: a strict check of OpenAI's whole type would refuse
# servers that are usable but differ in a field nobody reads (finish_reason "eos", no "created").
Tokens = Annotated[int, Field(ge=0, le=2**31)]  # a count past 2**31 is no count (and would not fit BIGINT)


class _Function(BaseModel):
    name: str | None = None


class _ToolCall(BaseModel):
    function: _Function | None = None


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: Tokens | None = None
    completion_tokens: Tokens | None = None


class _Body(BaseModel):
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


def body_cap(limit: int) -> Callable[[openai_httpx.Response], Awaitable[None]]:
    """A response event hook for the HTTP client: every response's body, errors too, refused past
    `limit` bytes on the wire, by its Content-Length before any of it is read, or as soon as a body
    without one goes over. (A hook, not a transport: a transport of our own turns off the proxies the
    environment sets.)"""

    async def cap(response: openai_httpx.Response) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit, f"it declares {int(declared):,} bytes; none of it was read")
        response.stream = _CappedStream(response.stream, limit)

    return cap


class _CappedStream(openai_httpx.AsyncByteStream):
    def __init__(self, stream: Any, limit: int):
        self.stream, self.limit = stream, limit

    @property
    def elapsed(self) -> Any:  # what httpx reads off the stream for Response.elapsed
        return getattr(self.stream, "elapsed", None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        chunks = self.stream.__aiter__()
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.limit:
                    raise _too_large(self.limit, f"more than {self.limit:,} bytes came; the rest was not read")
                yield chunk
        finally:  # as httpx does with the streams it wraps: the connection's reader is closed at once
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def read_capped(response: openai_httpx.Response, limit: int) -> bytes:
    """The body, decoded, refused (LLMOutputError too_large) as soon as it passes `limit` bytes: the
    hook caps the bytes on the wire, this caps what a compressed body inflates to."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, f"more than {limit:,} bytes once decompressed; the rest was not read")
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, response: openai_httpx.Response) -> Completion:
    """The first choice of a chat completion; raises LLMOutputError bad_response, saying what is wrong,
    for anything else (not JSON, an error object, no choices, a field of the wrong kind)."""
    try:
        data = _Body.model_validate_json(body)
    except ValidationError as exc:
        raise LLMOutputError(_what_is_wrong(body, response, exc), Status.BAD_RESPONSE) from None
    choice, usage = data.choices[0], data.usage or _Usage()
    calls = tuple((c.function.name if c.function else None) or "?" for c in choice.message.tool_calls or ())
    return Completion(
        choice.message.content,
        choice.finish_reason,
        usage.prompt_tokens or 0,
        usage.completion_tokens or 0,
        calls,
    )


def check_length(answer: Completion, max_tokens: int) -> None:
    """Raise LLMOutputError too_long for an answer far beyond `max_tokens` (by the tokens the endpoint
    reports or by its text's length): the endpoint ignored the limit, and such an answer stored as a
    turn would be sent back inside every later prompt."""
    if answer.completion_tokens > TOKENS_OVER * max_tokens:
        raise LLMOutputError(
            f"the answer is {answer.completion_tokens:,} tokens long, more than {TOKENS_OVER} times "
            f"max_tokens ({max_tokens:,}): the endpoint ignores max_tokens",
            Status.TOO_LONG,
        )
    if answer.content is not None and len(answer.content) > CHARACTERS_PER_TOKEN * max_tokens:
        raise LLMOutputError(
            f"the answer is {len(answer.content):,} characters long, more than {CHARACTERS_PER_TOKEN} for each "
            f"of max_tokens ({max_tokens:,}) tokens: the endpoint ignores max_tokens",
            Status.TOO_LONG,
        )


def _too_large(limit: int, detail: str) -> LLMOutputError:
    return LLMOutputError(
        f"the endpoint's answer is over the {limit:,}-byte cap ({detail}); SWARM_LLM_MAX_RESPONSE_MB raises the cap",
        Status.TOO_LARGE,
    )


def _what_is_wrong(body: bytes, response: openai_httpx.Response, exc: ValidationError) -> str:
    status = f"HTTP {response.status_code}"
    if any(e["type"] == "json_invalid" for e in exc.errors()):
        kind = response.headers.get("content-type") or "no content type"
        excerpt = body[: _EXCERPT * 4].decode("utf-8", "replace")[:_EXCERPT]
        return f"the endpoint answered {status} with a body that is not JSON ({kind}): {excerpt!r}"
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # valid for pydantic's parser but not the json module's
        data = None
    if isinstance(data, dict) and data.get("error") and not data.get("choices"):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else None
        text = str(message or error)[:_EXCERPT]
        return f"the endpoint answered {status} with an error instead of a completion: {text}"
    if isinstance(data, dict) and data.get("choices") == []:
        return f"the endpoint answered {status} with no choices (an empty completion)"
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:4])
    return f"the endpoint answered {status} with something that is not a chat completion ({problems})"
