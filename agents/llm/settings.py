"""LLM endpoint settings, from flags or the ecosystem's environment variables.

settings = LLMSettings.from_env(base_url="http://localhost:8080/v1", model="qwen2.5-7b")
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from agents.llm.errors import LLMSettingError


@dataclass
class LLMSettings:
    base_url: str | None = None  # OPENAI_BASE_URL; None means api.openai.com
    api_key: str | None = None  # OPENAI_API_KEY; local servers take any value
    model: str = "gpt-4o-mini"  # SWARM_MODEL
    max_concurrency: int = 8  # requests in flight to the endpoint (cut in half by a 429, grows back)
    requests_per_minute: float = 0.0  # 0 = no limit of our own
    tokens_per_minute: float = 0.0  # 0 = no limit of our own
    timeout: float = 120.0  # seconds without progress (to connect, for the answer to start, between bytes)
    # seconds for one whole request, headers and body: `timeout` alone lets a body that trickles a byte
    # now and then run for ever. The default leaves a slow server its full `timeout` to start answering
    # (a non-streamed answer starts once it is generated) and a minute more for the body.
    deadline: float = 180.0  # SWARM_LLM_DEADLINE_S
    # an answer's body is refused beyond this size, before it is all read: ~1,000 times what a 1,024-token
    # answer takes, so only an endpoint that ignores max_tokens (or is hostile) ever reaches it
    max_response_bytes: int = 8 * 1024 * 1024  # SWARM_LLM_MAX_RESPONSE_MB
    max_retries: int = 4  # per call, for 429/5xx/timeouts/dropped connections/bad responses
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    # the endpoint is declared down (the run stops) after this many failed requests in a row that also
    # span this many seconds without one success: a burst of 5xx from many agents at once is not an outage
    breaker_failures: int = 6
    breaker_seconds: float = 30.0  # SWARM_LLM_BREAKER_S
    temperature: float = 0.7
    max_tokens: int = 1024

    @classmethod
    def from_env(cls, *, base_url: str | None = None, model: str | None = None, **overrides: object) -> LLMSettings:
        values: dict[str, object] = {
            "base_url": base_url or os.environ.get("OPENAI_BASE_URL") or None,
            "api_key": os.environ.get("OPENAI_API_KEY") or None,
            "model": model or os.environ.get("SWARM_MODEL") or cls.model,
        }
        return cls(**{**values, **env_limits(), **overrides})  # type: ignore[arg-type]

    @property
    def endpoint(self) -> str:
        return (self.base_url or "https://api.openai.com/v1").rstrip("/")


def env_limits() -> dict[str, float | int]:
    """The settings the SWARM_LLM_* variables set (the defaults where unset); raises LLMSettingError,
    naming the variable, for a value that is not a number or out of range."""
    megabytes = _number("SWARM_LLM_MAX_RESPONSE_MB", LLMSettings.max_response_bytes / 2**20, "megabytes")
    return {
        "breaker_seconds": breaker_seconds(),
        "deadline": _number("SWARM_LLM_DEADLINE_S", LLMSettings.deadline, "seconds"),
        "max_response_bytes": max(1, round(megabytes * 2**20)),
    }


def breaker_seconds() -> float:
    """$SWARM_LLM_BREAKER_S, or the default; a value that is not a number says so."""
    return _number("SWARM_LLM_BREAKER_S", LLMSettings.breaker_seconds, "seconds", zero=True)


def _number(name: str, default: float, unit: str, *, zero: bool = False) -> float:
    """$name as a number (finite, above zero or with `zero` at least zero), or `default` when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise LLMSettingError(f"{name} must be a number of {unit}, not {raw!r}") from None
    if not math.isfinite(value):
        raise LLMSettingError(f"{name} must be a finite number of {unit}, not {raw!r}")
    if value < 0 or (value == 0 and not zero):
        raise LLMSettingError(f"{name} must be {'zero or more' if zero else 'more than zero'} {unit}, not {raw!r}")
    return value
