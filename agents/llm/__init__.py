"""The LLM layer: any OpenAI-compatible endpoint, one shared adaptive limiter, a response cache, and
structured outputs validated with pydantic; every call is a row in `llm_calls`.

The names below are loaded on first use, not on `import agents.llm`: the openai client takes ~0.8 s to
import, which every `swarm` command (`swarm query`, `swarm personas sample`) would otherwise pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.lazy import lazy_names

if TYPE_CHECKING:
    from agents.llm.client import LLMClient, Reply
    from agents.llm.errors import LLMError, LLMOutputError, LLMUnavailable
    from agents.llm.settings import LLMSettings

_WHERE = {
    "LLMClient": "agents.llm.client",
    "Reply": "agents.llm.client",
    "LLMError": "agents.llm.errors",
    "LLMOutputError": "agents.llm.errors",
    "LLMUnavailable": "agents.llm.errors",
    "LLMSettings": "agents.llm.settings",
}

__getattr__ = lazy_names("agents.llm", _WHERE)


__all__ = ["LLMClient", "LLMError", "LLMOutputError", "LLMSettings", "LLMUnavailable", "Reply"]
