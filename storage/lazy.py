"""Names a package loads on first use (PEP 562): `import crawler` or `import storage` stays cheap, and
a process that needs one module (an extraction worker, `swarm query`) does not pay for the rest.

    __getattr__ = lazy_names("crawler", {"Crawl": "crawler.crawl", "CrawlSettings": "crawler.settings"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports each name in `where` from its module when first asked for."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
