"""Errors of the persona hub; the CLI prints them as one-line messages.

PersonaHubError
 ├── UnsupportedFile    unknown extension/format, unreadable file
 ├── NoTextField        no recognisable persona text field (the message lists the fields found)
 ├── StrictRefused      --strict and some lines were bad: nothing was imported
 ├── BadFilter          a --where / --stratify-by that DuckDB cannot run
 └── EmptySelection     a filter that matches no persona
"""

from __future__ import annotations

from storage.errors import SwarmError


class PersonaHubError(SwarmError):
    pass


class UnsupportedFile(PersonaHubError):
    pass


class NoTextField(PersonaHubError):
    pass


class StrictRefused(PersonaHubError):
    def __init__(self, message: str, rejects: list[tuple[str, int | None, str]]):
        super().__init__(message)
        self.rejects = rejects


class BadFilter(PersonaHubError):
    pass


class EmptySelection(PersonaHubError):
    pass
