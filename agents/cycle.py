"""One prompt cycle of one persona: the recipe's steps, in order, over one shared state.

The default recipe (agents/recipes/default.toml) is: interests → read → converse → metadata →
variations → next. Steps before the conversation exists decide whether there is one: a failure there
fails the unit. A step after it (metadata, variations, next, or any a recipe adds) that fails — an
answer still invalid after its repair round, a template that cannot render — does not cost the
conversation: it is recorded in `failed_steps` and the conversation kept as partial, and
`swarm run --resume` runs only those steps (`complete`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agents import quality
from agents.conversation import Conversation, CycleConfig
from agents.llm import LLMClient
from agents.llm.errors import LLMOutputError
from agents.recipes import Recipe, default
from agents.recipes.spec import DEFAULT_MODEL
from agents.recipes.templates import PersonaView, TemplateProblem
from agents.runs import UnitReason
from agents.steps import CycleFailed, CycleState, Reader, StepFailed, StepKind

Models = Mapping[str, LLMClient]  # model alias → client; "default" is the run's own endpoint

__all__ = [
    "Conversation",
    "CycleConfig",
    "CycleFailed",
    "PersonaView",
    "Reader",
    "complete",
    "run_cycle",
    "run_persona",
]


def unit_scope(persona_id: str, cycle: int, attempt: int = 0) -> str:
    """The LLM cache's scope for one persona's cycle: its answers are its own (see LLMClient.chat). A
    unit tried again after it failed is a new attempt: replaying its cached answers would mostly replay
    the failure (the same queries finding no pages), so it gets fresh ones."""
    return f"{persona_id}/{cycle}" + (f"/attempt{attempt + 1}" if attempt else "")


def models_of(llm: LLMClient | Models) -> Models:
    return {DEFAULT_MODEL: llm} if isinstance(llm, LLMClient) else llm


async def run_cycle(
    llm: LLMClient | Models,
    persona: PersonaView,
    read: Reader,
    config: CycleConfig,
    *,
    recipe: Recipe | None = None,
    cycle: int = 0,
    queries: list[str] | None = None,
    attempt: int = 0,
) -> Conversation:
    """One cycle; raises CycleFailed (no pages, …) or the LLM layer's errors. `attempt`: how many times
    this unit failed before (see unit_scope)."""
    recipe = recipe or default()
    conversation = Conversation(persona.id, cycle, list(queries or []), recipe_hash=recipe.hash)
    state = CycleState(persona, conversation, config, models_of(llm), read, unit_scope(persona.id, cycle, attempt))
    await _steps(state, recipe.steps)
    if conversation.messages and config.checks:
        pages = {c.number: c.page.text for c in state.chosen}
        checks = quality.check(
            conversation.messages, pages, conversation.metadata, persona=persona.text, language=recipe.spec.language
        )
        conversation.quality = [*checks, *conversation.quality]  # and what inline judges said
    return conversation


async def complete(
    llm: LLMClient | Models,
    conversation: Conversation,
    persona: PersonaView,
    config: CycleConfig,
    *,
    recipe: Recipe | None = None,
    attempt: int = 0,
) -> Conversation:
    """Run again only the steps a partial conversation failed (what `swarm run --resume` does with it);
    the turns, sources and the outputs of the steps that worked are kept as they are."""
    recipe = recipe or default()
    failed = set(conversation.failed_steps)
    conversation.failed_steps = {}
    scope = unit_scope(conversation.persona_id, conversation.cycle, attempt)
    state = CycleState(persona, conversation, config, models_of(llm), _no_reading, scope)
    await _steps(state, [step for step in recipe.steps if step.name in failed])
    # the turns did not change: only the checks that read what a late step makes run again
    again = {c.name for c in quality.CHECKS if not c.needs_pages and config.checks}
    language = recipe.spec.language
    checks = quality.check(
        conversation.messages, {}, conversation.metadata, persona=persona.text, language=language, only=again
    )
    conversation.quality = [*checks, *conversation.quality]  # and what the judges run again said
    return conversation


async def _no_reading(queries: list[str]) -> list[Any]:
    raise StepFailed("not_resumable", "a step that reads pages cannot run again on a kept conversation")


async def _steps(state: CycleState, steps: Iterable[StepKind]) -> None:
    conversation = state.conversation
    for step in steps:
        late = bool(conversation.messages)  # the conversation exists: what fails now is recorded, not fatal
        try:
            await step.run(state)
        except (LLMOutputError, StepFailed, TemplateProblem) as exc:
            reason = str(exc.reason) if isinstance(exc, LLMOutputError | StepFailed) else UnitReason.TEMPLATE_ERROR
            if late:
                conversation.failed_steps[step.name] = {"reason": reason, "detail": str(exc)}
            elif isinstance(exc, LLMOutputError):
                raise
            else:
                raise CycleFailed(reason, f"step {step.name}: {exc}") from exc
    conversation.prompt_versions = sorted({*conversation.prompt_versions, *state.used})


async def run_persona(
    llm: LLMClient | Models,
    persona: PersonaView,
    read: Reader,
    config: CycleConfig,
    cycles: int = 1,
    *,
    recipe: Recipe | None = None,
) -> list[Conversation]:
    """`cycles` cycles in a row: each next cycle searches for the question the last one predicted, so a
    persona follows its own trail across the web."""
    done: list[Conversation] = []
    queries: list[str] | None = None
    for number in range(cycles):
        conversation = await run_cycle(llm, persona, read, config, recipe=recipe, cycle=number, queries=queries)
        done.append(conversation)
        queries = conversation.next_queries
    return done
