"""When to try an HTTP request again: the server's Retry-After, else exponential backoff with full jitter.

One helper for the crawler's fetcher and the agents' LLM client, so that both read a header the same way.
"""

from __future__ import annotations

import email.utils
import math
import random
import time


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds, or None when absent or unreadable.

    RFC 9110 allows delta-seconds or an HTTP-date. Some APIs send decimals ("1.5"), so a non-negative
    number of any form is taken; a date in the past is 0.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int, base: float, ceiling: float) -> float:
    """Seconds to wait before retry `attempt` (0-based): uniform in [0, min(ceiling, base * 2^attempt)].

    Full jitter, so that retries from many tasks that failed together do not return together.
    """
    return random.uniform(0, min(ceiling, base * 2 ** min(attempt, 62)))
