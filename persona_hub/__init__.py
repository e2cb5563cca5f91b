"""Persona hub: import persona files in the public datasets' layouts, dedup, filter and sample them."""

from persona_hub.errors import (
    BadFilter,
    EmptySelection,
    NoTextField,
    PersonaHubError,
    StrictRefused,
    UnsupportedFile,
)
from persona_hub.importer import ImportOptions, ImportReport, SourceReport, import_files
from persona_hub.layouts import LAYOUTS
from persona_hub.sampling import Sample, count, sample, stats
from persona_hub.sources import INPUT_FORMATS

__all__ = [
    "INPUT_FORMATS",
    "LAYOUTS",
    "BadFilter",
    "EmptySelection",
    "ImportOptions",
    "ImportReport",
    "NoTextField",
    "PersonaHubError",
    "Sample",
    "SourceReport",
    "StrictRefused",
    "UnsupportedFile",
    "count",
    "import_files",
    "sample",
    "stats",
]
