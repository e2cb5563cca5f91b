"""LLM layer errors.

LLMError
 ├── LLMUnavailable   the endpoint is down, refuses the key, or lacks the model: stop the run
 ├── LLMOutputError   one call's answer could not be used (after its retries); the unit fails
 └── LLMSettingError  a setting from the environment makes no sense: nothing starts
"""

from __future__ import annotations

from enum import StrEnum

from storage.errors import SwarmError

MESSAGE_CHARS = 2000  # a message quotes what the endpoint sent, which can be any size; it ends up in rows


class Status(StrEnum):
    """`llm_calls.status`, and the reason an LLMError carries; a str, so it is stored as the code itself."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429: the endpoint said "later"; retried after its Retry-After
    SERVER_ERROR = "server_error"  # 5xx
    BAD_REQUEST = "bad_request"  # 4xx: the endpoint refused the request itself
    TIMEOUT = "timeout"  # no answer within the timeout or the deadline
    BAD_RESPONSE = "bad_response"  # a 200 whose body is no completion
    EMPTY_ANSWER = "empty_answer"  # a completion with no text (or only a reasoning block, or a tool call)
    TOO_LARGE = "too_large"  # a body over SWARM_LLM_MAX_RESPONSE_MB
    TOO_LONG = "too_long"  # far more tokens than max_tokens allowed
    INVALID_JSON = "invalid_json"  # a structured answer that is no JSON
    SCHEMA_INVALID = "schema_invalid"  # JSON that does not fit the schema
    LENGTH = "length"  # cut off at max_tokens
    AUTH = "auth"  # the key was refused
    UNAVAILABLE = "unavailable"  # unreachable, no such model, or the breaker is open
    CANCELLED = "cancelled"  # the run was stopped mid-call
    SETTING = "setting"  # a setting from the environment makes no sense


class LLMError(SwarmError):
    reason: Status

    def __init__(self, message: str, reason: Status):
        super().__init__(message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + "…", reason=reason)


class LLMUnavailable(LLMError):
    pass


class LLMOutputError(LLMError):
    """One call's answer could not be used; `answer` keeps what the model said, when it said something."""

    def __init__(self, message: str, reason: Status, answer: str | None = None):
        super().__init__(message, reason)
        self.answer = answer[: MESSAGE_CHARS * 10] if answer else None


class LLMSettingError(LLMError):
    def __init__(self, message: str):
        super().__init__(message, Status.SETTING)
