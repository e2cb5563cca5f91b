"""Errors of the persona hub; the CLI prints them as one-line messages.

PersonaHubError
 ├── UnsupportedFile    unknown extension/format, unreadable file
 ├── NoTextField        no recognisable persona text field (the message lists the fields found)
 ├── StrictRefused      strict import and some lines were bad: nothing was imported
 ├── BadFilter          a filter or stratify column that DuckDB cannot run
 └── EmptySelection     a filter that matches no persona
"""

from __future__ import annotations

from enum import StrEnum

from storage.errors import SwarmError


class RejectReason(StrEnum):
    """`import_rejects.reason`: why an import did not take a record (besides `csv_<DuckDB's error>`)."""

    BAD_JSON = "bad_json"  # not JSON, or nested too deep to read safely
    NOT_AN_OBJECT = "not_an_object"
    BAD_ENCODING = "bad_encoding"  # not UTF-8
    NO_TEXT = "no_text"  # no persona text field
    TEXT_NOT_STRING = "text_not_string"
    EMPTY_TEXT = "empty_text"
    TOO_LONG = "too_long"
    TINYTROUPE_FRAGMENT = "tinytroupe_fragment"  # a fragment, not an agent: nothing to import
    NEAR_DUPLICATE = "near_duplicate"


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
