"""A process that imports Great Expectations while a run's earlier stages work, then validates.

Importing Great Expectations costs about 3 s of one core, a fifth of a small tenant's nightly
run. A run of several stages starts this worker first: on the second core it imports GX while
extract and transform work (mostly inside DuckDB), and the validate stage hands it the job and
waits for the outcome. A separate process, not a thread, because two threads importing
overlapping packages can deadlock on Python's import locks, and a thread would compete with
the stages for the GIL. The worker is spawned (a fresh interpreter, so nothing of the parent's
open DuckDB connections is inherited), does one validation and exits; it exits too when the
run ends without validating, as its end of the pipe closes, and at once when the run's process
dies (killed by a scheduler's timeout, say), so it never holds the warehouse open for a retry.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import resource
import threading
import traceback
from contextlib import suppress
from datetime import date
from multiprocessing.connection import Connection, wait
from typing import Any

from servicervault.config import Tenant
from servicervault.errors import VaultError
from servicervault.gx_bridge import ValidationOutcome


class ValidationWorker:
    """One validation, run in a process started (and importing GX) ahead of time."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_end,), name="vault-validate", daemon=True
        )
        self._process.start()
        child_end.close()
        #: The worker's peak resident memory, known once it has validated.
        self.peak_rss_mib: float | None = None

    def validate(
        self, tenant: Tenant, run_id: str, checked_from: date | None, period_tables: list[str]
    ) -> ValidationOutcome:
        """:func:`servicervault.stages.validate.validate`, in the worker; its errors re-raised."""
        # A worker that ended early leaves the pipe broken, but the error it ended on (failing
        # to start, say) may still be waiting in it: read before declaring it dead.
        with suppress(BrokenPipeError):
            self._connection.send((tenant, run_id, checked_from, period_tables))
        try:
            ok, value, peak_rss_mib = self._connection.recv()
        except EOFError:
            self._process.join()
            raise VaultError(
                "the validation process ended without a result "
                f"(exit code {self._process.exitcode}); nothing was validated"
            ) from None
        self.peak_rss_mib = peak_rss_mib
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the worker if it is still there (the run ended before validating)."""
        self._connection.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _serve(connection: Connection) -> None:
    """The worker's life: import, wait for the one job, send back its outcome or error."""
    threading.Thread(target=_exit_with_the_run, daemon=True).start()
    try:
        import great_expectations  # noqa: F401 -- the import this process exists to do early

        from servicervault.stages.validate import validate

        job = connection.recv()
    except EOFError:
        return  # the run ended without validating
    except BaseException as exc:  # failing to start is the validation's outcome
        _reply(connection, exc)
        return
    try:
        outcome: Any = validate(*job)
    except BaseException as exc:
        outcome = exc
    _reply(connection, outcome)


def _exit_with_the_run() -> None:
    """End this process as soon as the run's process has ended, however it ended."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(1)


def _reply(connection: Connection, value: Any) -> None:
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if not isinstance(value, BaseException):
        connection.send((True, value, peak_rss_mib))
        return
    value.add_note(f"in the validation process:\n{traceback.format_exc()}")
    connection.send((False, _transportable(value), peak_rss_mib))


def _transportable(error: BaseException) -> BaseException:
    """``error`` if the run's process can rebuild it from a pickle, else an error of the same
    standing (a VaultError stays one, anything else stays a bug) that says what it said."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        kind = VaultError if isinstance(error, VaultError) else RuntimeError
        substitute = kind(f"{type(error).__name__}: {error}")
        for note in getattr(error, "__notes__", []):
            substitute.add_note(note)
        return substitute
