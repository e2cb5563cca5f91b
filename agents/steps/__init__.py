"""The kinds of step a recipe's cycle is made of (interests, read, converse, structured, variations,
next), the registry new kinds join, and the state the steps of one cycle share."""

from agents.steps.base import (
    COMMON_VARIABLES,
    STEP_KINDS,
    CycleFailed,
    CycleState,
    Prompt,
    Reader,
    StepFailed,
    StepKind,
    compile_prompt,
)

__all__ = [
    "COMMON_VARIABLES",
    "STEP_KINDS",
    "CycleFailed",
    "CycleState",
    "Prompt",
    "Reader",
    "StepFailed",
    "StepKind",
    "compile_prompt",
]
