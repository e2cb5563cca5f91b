"""`--where`: a user's SQL condition, accepted only as one expression.

The condition is pasted into SQL that swarm builds (`… WHERE (<condition>) ORDER BY … LIMIT n`), so text
such as `true) --` or `1=1) UNION SELECT …` would otherwise close the parenthesis and rewrite the rest
of the query. DuckDB's own parser decides: the text must parse as exactly one expression, with nothing
around it (no FROM, ORDER BY, LIMIT, second statement or unbalanced parenthesis).
"""

from __future__ import annotations

import duckdb

from storage.errors import QueryError


class BadCondition(QueryError):
    """A `--where` that is not one SQL condition; the message says why."""


def filter_expression(where: str | None) -> str | None:
    """`where` as a parenthesised SQL expression safe to paste after WHERE or AND, or None when blank.

    Raises BadCondition unless DuckDB parses `where` as one expression. The user's own text is kept (not a
    re-rendering) so it means exactly what they typed; the newline before the closing parenthesis ends
    a trailing `-- comment`, which stays allowed as in SQL typed by hand.
    """
    if where is None or not where.strip():
        return None
    try:
        duckdb.SQLExpression(where)
    except (duckdb.Error, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadCondition(f"it is not one SQL condition ({first})") from exc
    return f"(\n{where}\n)"


def where_clause(where: str | None) -> str:
    """`WHERE (<where>)` for a query swarm builds, or "" when there is no condition; see filter_expression."""
    expression = filter_expression(where)
    return f"WHERE {expression}" if expression else ""
