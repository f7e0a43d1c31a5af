"""The pipeline stages. Each is a plain function of a tenant: no typer, no printing.

Stages report progress through an optional callback so the CLI (or a scheduler) decides how
to show it, and return a small result the CLI renders and the ledger records.
"""
