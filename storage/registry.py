"""Named implementations of an extension point — search backends, export formats, persona layouts —
filled by a decorator in this code and by an entry-point group of any installed package:

    SEARCH_BACKENDS = Registry(
        "persona_swarm.search_backends", "search backend", builtins={"searxng": "crawler.search.searxng:SearXNG"}
    )

    @SEARCH_BACKENDS.register("mine")           # in code that runs before the name is asked for
    class Mine(SearchBackend): ...

    # a package's pyproject.toml, found once it is installed:
    [project.entry-points."persona_swarm.search_backends"]
    kagi = "swarm_kagi:Kagi"

Built-ins are declared as "module:attribute" references, as entry points are, so that the CLI can list
every choice in its help (`names()`) without importing any of them; each is imported when first asked
for. One that fails to import is a clear error naming its package, not a crash of every command. It
lives in `storage` because that is the one package the other three may all import.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from storage.errors import SwarmError

T = TypeVar("T")
log = logging.getLogger(__name__)


class UnknownName(SwarmError, LookupError):
    """A name no implementation is registered under, or one whose package fails to load."""


class Registry(Generic[T]):
    def __init__(self, group: str, what: str, *, builtins: Mapping[str, str] | None = None):
        self.group, self.what = group, what
        self._refs = {name.lower(): ref for name, ref in (builtins or {}).items()}  # name → "module:attribute"
        self._entries: dict[str, T] = {}
        self._found: list[importlib.metadata.EntryPoint] | None = None  # installed packages do not change
        self._warned: set[str] = set()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name` (lower-case)."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        key = name.strip().lower()
        if not key:
            raise ValueError(f"a {self.what} needs a name")
        self._entries[key] = obj

    def unregister(self, name: str) -> None:
        """Forget a name registered with `register` or `add` (a test's, say); entry points stay."""
        self._entries.pop(name.strip().lower(), None)

    def names(self) -> list[str]:
        """Built-in names in their order, then registered ones, then installed entry points' names."""
        found = [ep.name.strip().lower() for ep in self._entry_points()]
        return list(dict.fromkeys([*self._refs, *self._entries, *found]))

    def items(self) -> list[tuple[str, T]]:
        """Every implementation, entry points imported; one that fails to import is skipped with a warning
        (asked for by name, it is an error)."""
        found = []
        for name in self.names():
            try:
                found.append((name, self.get(name)))
            except UnknownName as exc:
                log.warning("%s", exc)
        return found

    def get(self, name: str) -> T:
        """The implementation called `name`. Built-ins and names registered in code come first: an
        entry point of the same name is shadowed, with a warning. UnknownName for anything else, and for
        one that fails to load or is not callable (naming its package)."""
        key = name.strip().lower()
        if (key in self._entries or key in self._refs) and key not in self._warned:
            self._warned.add(key)
            for ep in (ep for ep in self._entry_points() if ep.name.strip().lower() == key):
                log.warning(
                    "the %s %r of the package %s is shadowed by persona-swarm's own", self.what, key, _package(ep)
                )
        if key in self._entries:
            return self._entries[key]
        if key in self._refs:
            module, _, attribute = self._refs[key].partition(":")
            self._entries[key] = self._loaded(
                name, "persona-swarm", lambda: getattr(importlib.import_module(module), attribute)
            )
            return self._entries[key]
        for ep in self._entry_points():
            if ep.name.strip().lower() == key:
                self._entries[key] = self._loaded(name, _package(ep), ep.load)
                return self._entries[key]
        raise UnknownName(f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}")

    def _loaded(self, name: str, package: str, load: Callable[[], T]) -> T:
        try:
            obj = load()
        except Exception as exc:  # a broken plugin (or a missing dependency): say which, and how it failed
            raise UnknownName(
                f"the {self.what} {name!r} from the package {package} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(obj):
            raise UnknownName(
                f"the {self.what} {name!r} from the package {package} is a {type(obj).__name__}, not something to call"
            )
        return obj

    def _entry_points(self) -> list[importlib.metadata.EntryPoint]:
        if self._found is None:  # read once: every import file's layout detection asks again
            self._found = list(importlib.metadata.entry_points(group=self.group))
        return self._found


def _package(ep: importlib.metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.value
