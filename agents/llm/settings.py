"""LLM endpoint settings, from flags or the ecosystem's environment variables.

settings = LLMSettings.from_env(base_url="http://localhost:8080/v1", model="qwen2.5-7b")
"""

from __future__ import annotations

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
    timeout: float = 120.0  # seconds for one request
    max_retries: int = 4  # per call, for 429/5xx/timeouts/dropped connections
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
        return cls(**{**values, "breaker_seconds": breaker_seconds(), **overrides})  # type: ignore[arg-type]

    @property
    def endpoint(self) -> str:
        return (self.base_url or "https://api.openai.com/v1").rstrip("/")


def breaker_seconds() -> float:
    """$SWARM_LLM_BREAKER_S, or the default; a value that is not a number says so."""
    raw = os.environ.get("SWARM_LLM_BREAKER_S", "").strip()
    if not raw:
        return LLMSettings.breaker_seconds
    try:
        value = float(raw)
    except ValueError:
        raise LLMSettingError(f"SWARM_LLM_BREAKER_S must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise LLMSettingError(f"SWARM_LLM_BREAKER_S must be zero or more, not {raw!r}")
    return value
