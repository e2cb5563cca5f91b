"""The base of every error a user can cause or meet, and the storage layer's own.

    SwarmError                the base in every package (PersonaHubError, SearchError, LLMError, RunError, …)
     └── StorageError
     ├── DatabaseMissing      the database file does not exist (nothing imported yet)
     ├── DatabaseBusy         another process held the lock for longer than we were willing to wait
     ├── SchemaTooNew         the file was written by a newer persona-swarm
     ├── ReadOnlyViolation    a query tried to change something
     ├── QueryError           DuckDB refused the SQL (syntax, unknown table, …)
     └── WriteFailed          a batch could not be written; its rows were saved to a dead-letter file

The CLI turns any SwarmError into its one-line message (and its hint, when it has one) and exit 1;
anything else is a bug and shows its traceback. Nothing below the CLI prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# `{--where}` in a message stands for the setting `where`: the CLI writes its flag there (`--where`),
# anyone else its name, so that the library never assumes how it was called
_SETTING = re.compile(r"\{--([a-z_]+)\}")


class SwarmError(Exception):
    """An error a user can cause or meet: the message says what happened and what to do.

    `reason` is a short stable code (a subclass's default, or given); `hint` an optional next step the
    CLI prints on a line of its own. Both may name settings as `{--name}`."""

    reason: str = "error"

    def __init__(self, *args: Any, reason: str | None = None, hint: str | None = None):
        super().__init__(*args)
        if reason is not None:
            self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        return self.render(lambda name: f"`{name}`")

    def render(self, setting: Callable[[str], str]) -> str:
        """The message with each `{--name}` written as `setting(name)` (the CLI passes its flags)."""
        return _SETTING.sub(lambda m: setting(m.group(1)), super().__str__())

    def render_hint(self, setting: Callable[[str], str]) -> str | None:
        return _SETTING.sub(lambda m: setting(m.group(1)), self.hint) if self.hint else None


class StorageError(SwarmError):
    """Base class: every storage failure a user can cause or meet."""


class DatabaseMissing(StorageError):
    pass


class DatabaseBusy(StorageError):
    pass


class SchemaTooNew(StorageError):
    pass


class ReadOnlyViolation(StorageError):
    pass


class QueryError(StorageError):
    pass


class WriteFailed(StorageError):
    pass
