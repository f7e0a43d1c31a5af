"""Ending a process without the interpreter's teardown, once it has nothing left to do."""

from __future__ import annotations

import os
import sys


def fast_exit(code: int) -> None:
    """Flush stdout and stderr, then end the process with ``code`` at once.

    The interpreter's teardown frees every module one by one: 0.8 s for a worker that imported
    Great Expectations, about 0.2 s for a ``vault`` process with DuckDB, dlt and pyarrow loaded.
    Only for a process whose files and connections are already closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
