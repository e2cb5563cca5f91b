"""The LLM clients a recipe's prompts go to: one a model alias, each checked before any work.

    models = await open_models(stack, recipe, run_endpoint, db, writer, run_id=run_id)

`swarm run` opens those of every prompt; `swarm eval` those of the judges it runs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

from agents.llm import LLMClient, LLMSettings
from agents.llm.errors import LLMUnavailable
from agents.recipes import Recipe
from agents.recipes.spec import DEFAULT_MODEL
from agents.runs import RunError
from storage import BatchWriter, Database


def alias_settings(recipe: Recipe, run_endpoint: LLMSettings, aliases: set[str]) -> dict[str, LLMSettings]:
    """The endpoint of each of these model aliases; what an alias leaves out is the run's. A key variable
    that is not set is a RunError, raised before anything else happens."""
    found = {DEFAULT_MODEL: run_endpoint}
    for alias in sorted(aliases - {DEFAULT_MODEL}):
        spec = recipe.spec.models[alias]
        key = run_endpoint.api_key if spec.base_url in (None, run_endpoint.base_url) else None
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env) or None
            if key is None:
                raise RunError(f"model alias {alias!r} reads its key from ${spec.api_key_env}, which is not set")
        found[alias] = replace(
            run_endpoint,
            base_url=spec.base_url or run_endpoint.base_url,
            model=spec.model or run_endpoint.model,
            api_key=key,
            max_concurrency=spec.max_concurrency or run_endpoint.max_concurrency,
        )
    return found


async def open_models(
    stack: contextlib.AsyncExitStack,
    recipe: Recipe,
    run_endpoint: LLMSettings,
    db: Database,
    writer: BatchWriter,
    *,
    run_id: str | None,
    aliases: set[str] | None = None,
) -> dict[str, LLMClient]:
    """A client for each alias (default: every alias the recipe's prompts use), closed with `stack`;
    an endpoint that does not answer raises LLMUnavailable naming its alias."""
    models: dict[str, LLMClient] = {}
    for alias, settings in alias_settings(
        recipe, run_endpoint, recipe.aliases() if aliases is None else aliases
    ).items():
        client = LLMClient(settings, db, writer, run_id=run_id)
        stack.push_async_callback(client.aclose)
        models[alias] = client
    for alias, client in models.items():
        try:
            await client.check()
        except LLMUnavailable as exc:
            if alias == DEFAULT_MODEL:
                raise
            raise LLMUnavailable(f"model alias {alias!r}: {exc}", exc.reason) from exc
    return models
