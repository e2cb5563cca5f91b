"""Quality: checks on every conversation (no model needed), stored in the `quality` table."""

from agents.quality.checks import BY_NAME, CHECKS, Check, Result, check
from agents.quality.languages import problem as language_problem

__all__ = ["BY_NAME", "CHECKS", "Check", "Result", "check", "language_problem"]
