"""How the view's pages are made: the Jinja2 templates (autoescaping everything: page text, persona text
and model output are data, never markup), their filters, and links that keep a page's choices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from agents.cli.output import dumps, plain
from agents.quality.checks import CITATION

HERE = Path(__file__).resolve().parent


def page_link(n: int, source: dict[str, Any]) -> str | None:
    """Where the view's [n] leads: the stored page source n was."""
    return f"/pages/{source['page_id']}" if source.get("page_id") else None


def cited(
    text: str, numbered: dict[int, dict[str, Any]], link: Callable[[int, dict[str, Any]], str | None] = page_link
) -> Markup:
    """A message's text, escaped, with each [n] a link (`link`) to what source n was."""
    out, last = [], 0
    for match in CITATION.finditer(text):
        out.append(str(escape(text[last : match.start()])))
        n = int(match.group(1))
        source = numbered.get(n)
        href = link(n, source) if source else None
        label = escape(match.group(0))
        if href:
            title = escape(str(source.get("title") or source.get("url") or "")) if source else ""
            out.append(f'<a class="cite" href="{escape(href)}" title="{title}">{label}</a>')
        else:
            out.append(f'<span class="cite missing" title="no source has this number">{label}</span>')
        last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def with_params(request: Request, **changes: Any) -> str:
    """The current page's URL with some query parameters changed (None removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    params.pop("token", None)
    return request.url.path + ("?" + urlencode(params) if params else "")


templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True))
templates.env.globals["with_params"] = with_params
templates.env.filters["cited"] = cited
templates.env.filters["json"] = lambda value: dumps(plain(value))


def when(value: Any) -> str:
    """A time as people read it, in UTC to the second."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")
    return "" if value is None else str(value)


templates.env.filters["when"] = when
