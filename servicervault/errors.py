"""Errors a user can act on. Each carries a message that says what is wrong and where.

Anything raised as a ``VaultError`` is shown to the user as one clear line, recorded in the
run ledger, and turns into a non-zero exit; anything else is a bug and keeps its traceback.
"""


class VaultError(Exception):
    """An expected failure: bad input, bad config, or a stage that must not proceed."""


class NotReadyError(VaultError):
    """A stage was asked to run before the stage it depends on has produced anything."""
