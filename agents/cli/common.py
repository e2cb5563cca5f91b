"""What every command shares: the database from `--db`/`SWARM_DB`, consoles, and turning our errors
into one clear line on stderr and a non-zero exit code (only here, at the CLI's edge)."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from agents.cli.output import terminal_safe
from storage import Database, is_interrupt, resolve_db_path
from storage.errors import SwarmError

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


GLOBAL_OPTIONS = ("db", "wait")  # the app's own options (agents/cli/app.py), not any command's


def _flag(command: Callable[..., Any], name: str) -> str:
    """The flag of `command` that sets `name` (`--stratify-by`, `-n` has `--n`…); library errors name
    settings, the CLI says how to set them."""
    try:
        annotation = typing.get_type_hints(command, include_extras=True).get(name)
    except Exception:  # an annotation that does not resolve: the plain spelling will do
        annotation = None
    for meta in getattr(annotation, "__metadata__", ()):
        decls = [d for d in getattr(meta, "param_decls", None) or () if d.startswith("--")]
        if decls:
            return str(decls[0]).split("/")[0]
    flag = "--" + name.replace("_", "-")
    if name in GLOBAL_OPTIONS:  # given before the command, not after it
        return f"{flag} (before the command: swarm {flag} …)"
    return flag


def described(exc: SwarmError, command: Callable[..., Any]) -> str:
    """The error's message with the flags of `command` where it names settings."""
    return exc.render(functools.partial(_flag, command))


def cli_errors(func: F) -> F:
    """Print our own errors as one line and exit 1; let real bugs show their traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise fail("interrupted", 130) from exc
        except Exception as exc:
            if isinstance(exc, SwarmError):  # every package's errors derive from it
                flag = functools.partial(_flag, func)
                error = fail(exc.render(flag))
                if hint := exc.render_hint(flag):
                    err_console.print(Text.assemble(("hint:", "bold"), " ", terminal_safe(hint)), soft_wrap=True)
                raise error from exc
            if is_interrupt(exc):  # Ctrl-C that DuckDB saw first, in any command
                raise fail("interrupted", 130) from exc
            raise

    return wrapper  # type: ignore[return-value]
