"""What every command shares: the database from `--db`/`SWARM_DB`, consoles, and turning our errors
into one clear line on stderr and a non-zero exit code (only here, at the CLI's edge)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from agents.llm.errors import LLMSettingError, LLMUnavailable
from agents.llm.local import LocalModelUnavailable
from agents.runs import RunError
from crawler.render import RenderUnavailable
from crawler.search import SearchError
from persona_hub.errors import PersonaHubError
from storage import Database, resolve_db_path
from storage.errors import StorageError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class State:
    db_path: str | None = None
    lock_timeout: float = 30.0


state = State()


def database() -> Database:
    return Database(resolve_db_path(state.db_path), lock_timeout=state.lock_timeout)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True)
    return typer.Exit(code)


def cli_errors(func: F) -> F:
    """Print our own errors as one line and exit 1; let real bugs show their traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (
            StorageError,
            PersonaHubError,
            RenderUnavailable,
            SearchError,
            RunError,
            LLMUnavailable,
            LLMSettingError,
            LocalModelUnavailable,
        ) as exc:
            raise fail(str(exc)) from exc
        except KeyboardInterrupt as exc:
            raise fail("interrupted", 130) from exc

    return wrapper  # type: ignore[return-value]
