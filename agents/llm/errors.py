"""LLM layer errors.

LLMError
 ├── LLMUnavailable   the endpoint is down, refuses the key, or lacks the model: stop the run
 └── LLMOutputError   one call's answer could not be used (after its retries); the unit fails
"""

from __future__ import annotations


class LLMError(Exception):
    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class LLMUnavailable(LLMError):
    pass


class LLMOutputError(LLMError):
    pass
