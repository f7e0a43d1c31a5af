"""SQL text built from values: the one way a path or a config string enters a query."""

from collections.abc import Iterable


def literal(value: object) -> str:
    """A SQL string literal with quotes doubled, so the value stays data whatever it holds."""
    return "'" + str(value).replace("'", "''") + "'"


def literals(values: Iterable[object]) -> str:
    """``'a', 'b', ...``: the values as literals, for an ``IN (...)`` or a ``[...]`` list."""
    return ", ".join(literal(value) for value in values)
