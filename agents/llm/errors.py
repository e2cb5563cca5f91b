"""LLM layer errors.

LLMError
 ├── LLMUnavailable   the endpoint is down, refuses the key, or lacks the model: stop the run
 ├── LLMOutputError   one call's answer could not be used (after its retries); the unit fails
 └── LLMSettingError  a setting from the environment makes no sense: nothing starts
"""

from __future__ import annotations

MESSAGE_CHARS = 2000  # a message quotes what the endpoint sent, which can be any size; it ends up in rows


class LLMError(Exception):
    def __init__(self, message: str, reason: str):
        super().__init__(message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + "…")
        self.reason = reason


class LLMUnavailable(LLMError):
    pass


class LLMOutputError(LLMError):
    pass


class LLMSettingError(LLMError):
    def __init__(self, message: str):
        super().__init__(message, "setting")
