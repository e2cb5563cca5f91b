"""Estimated cost per call from a small editable price table (prices.json, or $SWARM_PRICES)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

DEFAULT = Path(__file__).with_name("prices.json")


@functools.cache
def table(path: str | None = None) -> dict[str, tuple[float, float]]:
    source = Path(path or os.environ.get("SWARM_PRICES") or DEFAULT)
    raw = json.loads(source.read_text())
    return {k: (float(v[0]), float(v[1])) for k, v in raw.items() if not k.startswith("_")}


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for this many tokens of `model`; 0.0 for a model not in the table (a local one, say)."""
    prices = table()
    match = max((name for name in prices if model.startswith(name)), key=len, default=None)
    if match is None:
        return 0.0
    per_input, per_output = prices[match]
    return (prompt_tokens * per_input + completion_tokens * per_output) / 1_000_000
