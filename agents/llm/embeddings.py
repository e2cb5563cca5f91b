"""Vectors for texts from an endpoint's POST /v1/embeddings (OpenAI, vLLM, Ollama, llama.cpp all serve
it), through a client's limiter and cache, logged in `llm_calls` like every call.

    vectors = await embed(client, ["first text", "second text"])

A text already embedded by the same model is not sent again (the cache keys on model and text). An
answer of one vector per token, which llama-cpp-python's server gives when its model has no pooling
(the embedded model), is mean-pooled here.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import openai

from agents.llm.cache import CachedAnswer, cache_key
from agents.llm.client import LLMClient, _Call
from agents.llm.errors import LLMOutputError, LLMUnavailable, Status

BATCH = 32  # texts a request
MAX_CHARS = 8_000  # of a text: about 2,000 tokens, within any embedding model's window


async def embed(client: LLMClient, texts: list[str], *, purpose: str = "embeddings") -> list[list[float]]:
    """One unit vector a text, in order; raises LLMUnavailable when the endpoint serves no embeddings."""
    texts = [t[:MAX_CHARS] or " " for t in texts]
    model = client.settings.model
    keys = [cache_key(model, [{"role": "embed", "content": t}], {}, None) for t in texts]
    found: dict[str, list[float]] = {}
    for key in dict.fromkeys(keys):
        hit = await client.cache.get(key)
        if hit is not None:
            found[key] = json.loads(hit.content)
    missing = [i for i, key in enumerate(keys) if key not in found]
    for start in range(0, len(missing), BATCH):
        batch = missing[start : start + BATCH]
        vectors = await _request(client, [texts[i] for i in batch], purpose, keys[batch[0]])
        for i, vector in zip(batch, vectors, strict=True):
            found[keys[i]] = vector
            client.cache.put(keys[i], model, CachedAnswer(json.dumps(vector), len(texts[i]) // 4 + 1, 0))
    vectors = [found[key] for key in keys]
    if len({len(v) for v in vectors}) > 1:  # a cached vector of another model by the same name, say
        raise LLMOutputError(f"vectors of {len({len(v) for v in vectors})} sizes for one model", Status.BAD_RESPONSE)
    return vectors


async def _request(client: LLMClient, texts: list[str], purpose: str, key: str) -> list[list[float]]:
    settings = client.settings
    call = _Call(time.monotonic(), key, mode="embeddings")
    last: Exception | None = None
    for attempt in range(settings.max_retries + 1):
        call.attempts += 1
        try:
            async with client.limiter.slot(sum(len(t) for t in texts) // 4 + 1):
                async with asyncio.timeout(settings.deadline):
                    answer = await client.openai.embeddings.create(model=settings.model, input=texts)
        except (openai.NotFoundError, openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            error = LLMUnavailable(
                f"{settings.endpoint} serves no embeddings for model {settings.model!r} ({exc.status_code}: "
                f"{str(exc)[:200]})",
                Status.UNAVAILABLE,
            )
            client._log(call, purpose, error.reason, error=str(exc)[:500])
            raise error from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            error = LLMUnavailable(f"{settings.endpoint} refused the API key ({exc.status_code})", Status.AUTH)
            client._log(call, purpose, error.reason, error=str(error))
            raise error from exc
        except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, TimeoutError) as exc:
            last = exc
            if attempt < settings.max_retries:
                await asyncio.sleep(client._backoff(attempt))
            continue
        except openai.RateLimitError as exc:
            last = exc
            client.limiter.rate_limited(client._backoff(attempt))
            continue
        except openai.APIStatusError as exc:  # 405, 413 …: this endpoint will not embed these texts
            error = LLMUnavailable(f"{settings.endpoint} refused the embeddings request ({exc.status_code})",
                                   Status.BAD_REQUEST)  # fmt: skip
            client._log(call, purpose, error.reason, error=str(exc)[:500])
            raise error from exc
        call.prompt_tokens = getattr(answer.usage, "prompt_tokens", 0) or 0
        try:
            vectors = [_pooled(item.embedding) for item in sorted(answer.data, key=lambda d: d.index)]
            if len(vectors) != len(texts) or len({len(v) for v in vectors}) > 1:
                raise ValueError(
                    f"{len(vectors)} vectors of sizes {sorted({len(v) for v in vectors})} for {len(texts)} texts"
                )
        except (TypeError, ValueError, AttributeError) as exc:
            broken = LLMOutputError(f"the embeddings answer is not one vector a text: {exc}", Status.BAD_RESPONSE)
            client._log(call, purpose, broken.reason, error=str(broken))
            raise broken from exc
        client._log(call, purpose, Status.OK)
        return vectors
    failed = LLMOutputError(
        f"gave up after {call.attempts} attempts: {type(last).__name__}: {last}", Status.UNAVAILABLE
    )
    client._log(call, purpose, failed.reason, error=str(failed)[:500])
    raise failed


def _pooled(value: Any) -> list[float]:
    """A unit vector from an answer's embedding: a list of numbers, or one list a token (averaged)."""
    if value and isinstance(value[0], list):
        value = [sum(column) / len(value) for column in zip(*value, strict=True)]
    vector = [float(x) for x in value]
    norm = math.sqrt(sum(x * x for x in vector))
    if not vector or not math.isfinite(norm) or norm == 0:
        raise ValueError("an empty, zero or non-finite vector")
    return [x / norm for x in vector]
