"""What every command shares: the database from `--db`/`SWARM_DB`, consoles, and turning our errors
into one clear line on stderr and a non-zero exit code (only here, at the CLI's edge)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from agents.cli.output import terminal_safe
from storage import Database, is_interrupt, resolve_db_path

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
    # messages quote the user's SQL, file names and DuckDB's words: shown as they are, never as markup
    err_console.print(Text.assemble(("error:", "bold red"), " ", terminal_safe(message)), soft_wrap=True)
    return typer.Exit(code)


# Our errors, by module: a command imports only what it uses (the LLM and crawler stacks take ~1 s to
# import), and an exception of one of these classes can only exist once its module is loaded.
_OUR_ERRORS = (
    ("storage.errors", "StorageError"),
    ("persona_hub.errors", "PersonaHubError"),
    ("crawler.render", "RenderUnavailable"),
    ("crawler.search.base", "SearchError"),
    ("agents.runs", "RunError"),
    ("agents.llm.errors", "LLMUnavailable"),
    ("agents.llm.errors", "LLMSettingError"),
    ("agents.llm.local", "LocalModelUnavailable"),
)


def _ours(exc: BaseException) -> bool:
    return any(
        isinstance(exc, getattr(sys.modules[module], name)) for module, name in _OUR_ERRORS if module in sys.modules
    )


def cli_errors(func: F) -> F:
    """Print our own errors as one line and exit 1; let real bugs show their traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise fail("interrupted", 130) from exc
        except Exception as exc:
            if _ours(exc):
                raise fail(str(exc)) from exc
            if is_interrupt(exc):  # Ctrl-C that DuckDB saw first, in any command
                raise fail("interrupted", 130) from exc
            raise

    return wrapper  # type: ignore[return-value]
