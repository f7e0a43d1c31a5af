"""SQL text built from values: the one way a path or a config string enters a query."""


def literal(value: object) -> str:
    """A SQL string literal with quotes doubled, so the value stays data whatever it holds."""
    return "'" + str(value).replace("'", "''") + "'"
