"""The one path every LLM call takes: cache, limiter, retries, structured output, and a row in
`llm_calls` for each call whatever happened.

    client = LLMClient(LLMSettings.from_env(), db, writer, run_id="run_…")
    reply = await client.chat(messages, purpose="interests", schema=Interests)
    reply.value      # an Interests instance (validated), or reply.text for plain answers
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import BaseModel

try:  # the openai client's own HTTP library: httpx2 from openai 3 on, httpx before
    import httpx2 as openai_httpx
except ImportError:  # pragma: no cover
    import httpx as openai_httpx  # type: ignore[no-redef]

from agents.llm import completion, structured
from agents.llm.cache import CachedAnswer, LLMCache, cache_key
from agents.llm.errors import LLMError, LLMOutputError, LLMUnavailable, Status
from agents.llm.limiter import AdaptiveLimiter
from agents.llm.prices import cost_usd
from agents.llm.settings import LLMSettings
from crawler.retry import backoff, retry_after_seconds
from storage import BatchWriter, Database
from storage.sql import new_id


@dataclass
class Reply:
    text: str
    value: BaseModel | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    mode: str


@dataclass
class _Call:
    started: float
    key: str
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mode: str = "text"


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


def _whole_sentences(text: str) -> str:
    """`text` up to the end of its last complete sentence ("" when there is none)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends else ""


def _retry_after(error: openai.APIStatusError) -> float | None:
    return retry_after_seconds(error.response.headers.get("retry-after") if error.response is not None else None)


def _empty(answer: completion.Completion) -> str:
    if answer.tool_calls:
        names = ", ".join(name[:60] for name in answer.tool_calls[:5])
        return f"the model called a tool ({names}) instead of answering; no tool was offered"
    return "the model's answer is empty" + (" (only a reasoning block)" if answer.content else "")


class LLMClient:
    def __init__(self, settings: LLMSettings, db: Database, writer: BatchWriter, run_id: str | None = None):
        self.settings, self.writer, self.run_id = settings, writer, run_id
        # the client's own retries are off, so that our limiter sees every 429
        # a pool sized to the limiter: httpcore scans its whole pool for every request, and the openai
        # client's default of 1,000 connections made that scan a tenth of a swarm's CPU
        pool = settings.max_concurrency + 4
        self.openai = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",
            max_retries=0,
            timeout=settings.timeout,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=openai_httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
                # every body, error bodies too, is capped on the wire: a hostile endpoint's 100 MB
                # answer is refused, not read
                event_hooks={"response": [completion.body_cap(settings.max_response_bytes)]},
            ),
        )
        self.limiter = AdaptiveLimiter(
            settings.max_concurrency, settings.requests_per_minute, settings.tokens_per_minute
        )
        self.cache = LLMCache(db, writer, run_id=run_id)
        self.modes: dict[str, int] = {}  # endpoint → index in structured.MODES that worked
        self._failures = 0
        self._failing_since: float | None = None  # when the current run of failures began
        self._down: str | None = None
        # running totals for progress displays (llm_calls holds the per-call truth)
        self.calls = self.cached_calls = self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = 0.0
        self.failures: dict[str, int] = {}

    async def check(self) -> None:
        """Fail fast, before any work: raise LLMUnavailable if the endpoint is unreachable or refuses the key.

        Uses GET /models, which OpenAI, vLLM, Ollama, llama.cpp and LM Studio all serve; an endpoint
        without it (404) is given the benefit of the doubt.
        """
        try:
            async with asyncio.timeout(self.settings.deadline):
                await self.openai.models.list()
        except TimeoutError as exc:
            raise LLMUnavailable(
                f"the LLM endpoint {self.settings.endpoint} did not answer GET /models within the "
                f"{self.settings.deadline:g} s deadline (SWARM_LLM_DEADLINE_S)",
                Status.TIMEOUT,
            ) from exc
        except LLMOutputError as exc:  # a body over the cap
            raise LLMUnavailable(f"the LLM endpoint {self.settings.endpoint}: {exc}", exc.reason) from exc
        except (AttributeError, TypeError, ValueError, RecursionError) as exc:
            # what the openai client raises reading a body that is no model list (a web page, say): most
            # likely the URL is a website, not an OpenAI-compatible API
            raise LLMUnavailable(
                f"the LLM endpoint {self.settings.endpoint} answered GET /models with something that is not a "
                f"model list ({type(exc).__name__}): is it an OpenAI-compatible API? (OPENAI_BASE_URL usually "
                "ends in /v1)",
                Status.BAD_RESPONSE,
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise LLMUnavailable(
                f"{self.settings.endpoint} refused the API key ({exc.status_code}): check OPENAI_API_KEY", Status.AUTH
            ) from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise LLMUnavailable(
                f"cannot reach the LLM endpoint {self.settings.endpoint} ({type(exc).__name__}): start the server "
                "or fix {--base_url} / OPENAI_BASE_URL",
                Status.UNAVAILABLE,
            ) from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise LLMUnavailable(
                    f"the LLM endpoint {self.settings.endpoint} answered {exc.status_code}: try again later",
                    Status.UNAVAILABLE,
                ) from exc

    async def aclose(self) -> None:
        await self.openai.close()

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        purpose: str,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        trim_on_length: bool = False,
        scope: str | None = None,
    ) -> Reply:
        """One completion; raises LLMUnavailable (stop the run) or LLMOutputError (this call failed).

        `scope` narrows the cache to this client's run and that scope (an agent's unit of work): a
        resumed unit gets its own answers back, while another unit, or a later run, with the same
        prompt gets a fresh sample instead of a copy (copies would be duplicates in the training data).

        A plain answer cut off by `max_tokens` fails, or with `trim_on_length` is kept up to its last
        complete sentence (when at least one is there): a shorter whole answer, never half a sentence.
        """
        if self._down:
            raise LLMUnavailable(self._down, Status.UNAVAILABLE)
        params = {
            "temperature": self.settings.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.settings.max_tokens,
        }
        key = cache_key(
            self.settings.model,
            messages,
            params,
            structured.schema_of(schema) if schema else None,
            None if scope is None else f"{self.run_id}/{scope}",
        )
        call = _Call(time.monotonic(), key)
        hit = await self.cache.get(key)
        if hit is not None:
            value = structured.parse(hit.content, schema) if schema else None
            self._log(call, purpose, Status.OK, cached=True)
            return Reply(hit.content, value, hit.prompt_tokens, hit.completion_tokens, True, "cache")
        try:
            reply = await self._answer(messages, params, schema, call, trim_on_length)
        except (LLMOutputError, LLMUnavailable) as exc:
            self._log(call, purpose, exc.reason, error=str(exc), answer=getattr(exc, "answer", None))
            raise
        except asyncio.CancelledError:
            # the run abandoned this call (a second Ctrl-C): its row still says what was attempted
            with contextlib.suppress(Exception):  # a writer already closed must not mask the cancellation
                self._log(call, purpose, Status.CANCELLED, error="cancelled before an answer (the run was stopped)")
            raise
        answer = CachedAnswer(reply.text, reply.prompt_tokens, reply.completion_tokens)
        self.cache.put(key, self.settings.model, answer, scoped=scope is not None)
        self._log(call, purpose, Status.OK)
        return reply

    # -- the answer, with one repair round for structured output -------------------------------------
    async def _answer(
        self,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        schema: type[BaseModel] | None,
        call: _Call,
        trim_on_length: bool = False,
    ) -> Reply:
        if schema is None:
            text, finish = await self._complete(messages, params, None, call)
            if finish == "length":
                whole = _whole_sentences(structured.strip_reasoning(text)) if trim_on_length else ""
                if not whole:
                    raise LLMOutputError("the answer was cut off (finish_reason length)", Status.LENGTH)
                text = whole
            return Reply(
                structured.strip_reasoning(text), None, call.prompt_tokens, call.completion_tokens, False, "text"
            )
        conversation = list(messages)
        for round_ in range(2):  # the answer, then one retry that shows the model its validation error
            text, finish = await self._complete(conversation, params, schema, call)
            mode = structured.MODES[self.modes.get(self.settings.endpoint, 0)]
            call.mode = mode
            try:
                if finish == "length":
                    raise ValueError("the answer was cut off before the JSON ended (finish_reason length)")
                value = structured.parse(text, schema)
            except Exception as exc:  # ValueError or pydantic.ValidationError
                reason = (
                    Status.LENGTH
                    if finish == "length"
                    else (
                        Status.INVALID_JSON
                        if isinstance(exc, ValueError) and not hasattr(exc, "errors")
                        else Status.SCHEMA_INVALID
                    )
                )
                if round_ == 1:
                    raise LLMOutputError(f"{reason}: {structured.describe(exc)}", reason, answer=text) from exc
                conversation = [
                    *conversation,
                    {"role": "assistant", "content": text},
                    {
                        "role": "user",
                        "content": f"That answer could not be used: {structured.describe(exc)}. "
                        "Reply again with only the JSON object, complete and matching the schema.",
                    },
                ]
                continue
            return Reply(
                structured.strip_reasoning(text), value, call.prompt_tokens, call.completion_tokens, False, mode
            )
        raise AssertionError("unreachable")

    # -- one request, with retries ---------------------------------------------------------------------
    async def _complete(
        self, messages: list[dict[str, Any]], params: dict[str, Any], schema: type[BaseModel] | None, call: _Call
    ) -> tuple[str, str | None]:
        last: Exception | None = None
        reason = Status.UNAVAILABLE
        estimate = sum(len(str(m.get("content", ""))) for m in messages) // 4 + int(params["max_tokens"])
        attempt = -1
        asked_again = False  # after an empty answer
        while attempt < self.settings.max_retries:  # a downgrade of the JSON mode is not a retry
            attempt += 1
            request: dict[str, Any] = {"model": self.settings.model, "messages": messages, **params}
            asked = self.modes.get(self.settings.endpoint, 0)
            if schema is not None:
                mode = structured.MODES[asked]
                fmt = structured.response_format(mode, schema)
                if fmt is not None:
                    request["response_format"] = fmt
                if mode == "instructions":
                    request["messages"] = [{"role": "system", "content": structured.instructions(schema)}, *messages]
            wait: float | None = None
            call.attempts += 1
            try:
                async with self.limiter.slot(estimate):
                    answer = await self._request(request, call)
            except openai.RateLimitError as exc:
                wait = _retry_after(exc) or self._backoff(attempt)
                self.limiter.rate_limited(wait)
                last = exc
                reason = Status.RATE_LIMITED
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                self._down = f"{self.settings.endpoint} refused the API key ({exc.status_code}): check OPENAI_API_KEY"
                raise LLMUnavailable(self._down, Status.AUTH) from exc
            except openai.NotFoundError as exc:
                self._down = (
                    f"{self.settings.endpoint} has no model {self.settings.model!r} (404): "
                    "check {--model} / SWARM_MODEL"
                )
                raise LLMUnavailable(self._down, Status.UNAVAILABLE) from exc
            except openai.BadRequestError as exc:
                message = str(exc).lower()
                if (
                    schema is not None
                    and ("response_format" in message or "json" in message)
                    and self._downgrade(asked)
                ):
                    attempt -= 1
                    continue  # the endpoint does not take this way of asking for JSON: try the next way
                raise LLMOutputError(f"the endpoint refused the request: {exc}", Status.BAD_REQUEST) from exc
            except (openai.APITimeoutError, openai_httpx.TimeoutException) as exc:  # the latter: reading the body
                last, reason = exc, Status.TIMEOUT
            except TimeoutError:
                last = LLMOutputError(
                    f"no whole answer within the {self.settings.deadline:g} s deadline (SWARM_LLM_DEADLINE_S)",
                    Status.TIMEOUT,
                )
                reason = Status.TIMEOUT
            except openai_httpx.DecodingError as exc:
                last = LLMOutputError(f"the endpoint's answer could not be decompressed: {exc}", Status.BAD_RESPONSE)
                reason = Status.BAD_RESPONSE
            except (openai.APIConnectionError, openai_httpx.RequestError) as exc:  # the latter: a body cut off
                last, reason = exc, Status.UNAVAILABLE
            except LLMOutputError as exc:
                if exc.reason != Status.BAD_RESPONSE:
                    # too_large, too_long: the endpoint ignored max_tokens, and would again (asking again
                    # costs as much again), so the call fails at once; the breaker still counts it
                    self._failed(exc.reason, exc)
                    raise
                last, reason = exc, Status.BAD_RESPONSE  # a broken answer may be a passing fault: retried as a 5xx
            except openai.APIStatusError as exc:
                # llama-cpp-python's server answers an unsupported response_format with a 500 (its request
                # validation error), not a 400: that too means "ask for JSON another way"
                if schema is not None and "response_format" in str(exc).lower() and self._downgrade(asked):
                    attempt -= 1
                    continue
                if exc.status_code < 500:
                    raise LLMOutputError(f"the endpoint answered {exc.status_code}: {exc}", Status.BAD_REQUEST) from exc
                last, reason = exc, Status.SERVER_ERROR
                wait = _retry_after(exc)
            else:
                self._failures, self._failing_since = 0, None
                await self.limiter.succeeded()
                text = answer.content or ""
                if answer.finish_reason == "length" or structured.strip_reasoning(text):
                    return text, answer.finish_reason
                # An empty answer (no text, or a tool call though no tool was offered) is the model's doing,
                # not the endpoint failing: the breaker does not count it. It is asked for once more, at
                # once, since a sampled model can end its answer before it starts by chance; a second
                # empty answer fails the call, as a model that keeps doing it will not change.
                empty = LLMOutputError(_empty(answer), Status.EMPTY_ANSWER)
                if asked_again or attempt >= self.settings.max_retries:
                    raise empty
                asked_again, last, reason = True, empty, Status.EMPTY_ANSWER
                continue
            if reason != Status.RATE_LIMITED:  # a 429 is the endpoint answering "later", not failing
                self._failed(reason, last)
            if attempt < self.settings.max_retries:
                if wait is not None and wait > self.settings.max_retry_after:
                    break
                await asyncio.sleep(wait if wait is not None else self._backoff(attempt))
        detail = str(last) if isinstance(last, LLMError) else f"{type(last).__name__}: {last}"
        raise LLMOutputError(f"gave up after {call.attempts} attempts: {detail}", reason)

    async def _request(self, request: dict[str, Any], call: _Call) -> completion.Completion:
        """One request and its answer, read within the deadline and the size cap; its usage is added to
        `call` even when the answer is then refused (as too long: those tokens were spent)."""
        async with asyncio.timeout(self.settings.deadline):
            async with self.openai.chat.completions.with_streaming_response.create(**request) as raw:
                body = await completion.read_capped(raw.http_response, self.settings.max_response_bytes)
        answer = completion.parse(body, raw.http_response)
        call.prompt_tokens += answer.prompt_tokens
        call.completion_tokens += answer.completion_tokens
        completion.check_length(answer, int(request["max_tokens"]))
        return answer

    def _failed(self, reason: Status, last: BaseException | None) -> None:
        """Count a failed request towards the breaker; raise LLMUnavailable once it trips."""
        now = time.monotonic()
        self._failures += 1
        self._failing_since = self._failing_since or now
        tripped = (
            self._failures >= self.settings.breaker_failures
            and now - self._failing_since >= self.settings.breaker_seconds
        )
        if tripped:
            what = f"{reason}: {str(last)[:200]}" if isinstance(last, LLMError) else type(last).__name__
            self._down = (
                f"{self.settings.endpoint} is not answering ({self._failures} failed requests in a row "
                f"over {now - self._failing_since:.0f}s, last: {what}); check OPENAI_BASE_URL or start the server"
            )
            raise LLMUnavailable(self._down, reason)

    def _downgrade(self, asked: int) -> bool:
        """After the endpoint refused mode `asked`: move to the next mode, unless a concurrent call already
        did (then just retry with the current one; moving again would skip a mode that works)."""
        index = self.modes.get(self.settings.endpoint, 0)
        if index != asked:
            return True
        if index + 1 >= len(structured.MODES):
            return False
        self.modes[self.settings.endpoint] = index + 1
        return True

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self.settings.backoff_base, self.settings.backoff_max)

    def _log(
        self,
        call: _Call,
        purpose: str,
        status: Status,
        *,
        cached: bool = False,
        error: str | None = None,
        answer: str | None = None,
    ) -> None:
        cost = 0.0 if cached else cost_usd(self.settings.model, call.prompt_tokens, call.completion_tokens)
        self.calls += 1
        self.cached_calls += cached
        self.prompt_tokens += 0 if cached else call.prompt_tokens
        self.completion_tokens += 0 if cached else call.completion_tokens
        self.cost_usd += cost
        if status != Status.OK:
            self.failures[status] = self.failures.get(status, 0) + 1
        self.writer.submit(
            "llm_calls",
            {
                "call_id": new_id("llm"),
                "run_id": self.run_id,
                "purpose": purpose,
                "model": self.settings.model,
                "endpoint": self.settings.endpoint,
                "mode": "cache" if cached else call.mode,
                "prompt_tokens": 0 if cached else call.prompt_tokens,
                "completion_tokens": 0 if cached else call.completion_tokens,
                "latency_ms": round((time.monotonic() - call.started) * 1000, 1),
                "attempts": call.attempts,
                "status": status,
                "cached": cached,
                "cost_usd": cost,
                "cache_key": call.key,
                "error": error,
                "answer": answer,  # what the model said when it could not be used, for a user to read
                "created_at": dt.datetime.now(dt.UTC),
            },
        )
