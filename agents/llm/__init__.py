"""The LLM layer: any OpenAI-compatible endpoint, one shared adaptive limiter, a response cache, and
structured outputs validated with pydantic; every call is a row in `llm_calls`."""

from agents.llm.client import LLMClient, Reply
from agents.llm.errors import LLMError, LLMOutputError, LLMUnavailable
from agents.llm.settings import LLMSettings

__all__ = ["LLMClient", "LLMError", "LLMOutputError", "LLMSettings", "LLMUnavailable", "Reply"]
