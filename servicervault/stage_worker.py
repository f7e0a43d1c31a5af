"""Processes that import a stage's heavy library while a run's earlier stages work, then run it.

A nightly run's fixed costs are mostly imports: SQLMesh about 2 s of one core, Great Expectations
2-3 s (without the modules it defers, see ``WorkerStage.deferred``). A run of several stages starts
a worker for each of transform and validate that comes after another stage, when the stage before it
starts: it imports its library at a lower priority, on what that stage (mostly inside DuckDB) leaves
idle, and the stage hands it the job and waits for the outcome. Processes, not threads, because two
threads importing overlapping packages can deadlock on Python's import locks, and a thread would
compete with the stages for the GIL. A worker is spawned (a fresh interpreter, so nothing of the
parent's open DuckDB connections is inherited), does one job and exits; it exits too when the run
ends without reaching its stage, as its end of the pipe closes, and at once when the run's process
dies (killed by a scheduler's timeout, say), so it never holds the warehouse open for a retry.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from servicervault import deferred_imports, usage
from servicervault.errors import VaultError
from servicervault.fast_exit import fast_exit

# How long a worker that has sent its last message is given to exit before it is terminated.
WAIT_FOR_AN_ENDING_WORKER_S = 10


@dataclass(frozen=True)
class WorkerStage:
    """What a stage's worker does ahead of time, and what it then runs."""

    library: str  # imported as soon as the worker starts
    # How much lower the worker's priority is while it imports (see _yielding).
    niceness: int
    module: str
    function: str  # called with the job's arguments, then what warm_up returned if there is one
    warm_up: str | None = None  # called with the worker's start arguments after the import
    # The function returns (outcome, finish): the outcome goes back at once, and finish() runs
    # after, while the run goes on; the run waits for it at its end (StageWorker.finish).
    finishes_after_reply: bool = False
    # Modules the library imports but the stage rarely uses: imported when first used instead
    # (see deferred_imports), so the import takes less of the cores from the stages before.
    deferred: tuple[str, ...] = ()


WORKER_STAGES = {
    "transform": WorkerStage(
        library="sqlmesh",
        niceness=10,
        module="servicervault.stages.transform",
        function="transform",
        warm_up="open_session",
        # SQLMesh's Python API reads where its notebook magics live at every call, to tell
        # whether they called it; their import loads IPython (0.12 s of the warm-up, which a
        # nightly transform waits for).
        deferred=("sqlmesh.magics",),
    ),
    # Validation's import yields to the transform worker's too: the transform waits for its
    # worker at its start, while validation's import has the whole transform to end in (a
    # nightly month at 12 M, four alternating pairs: 0.15-0.7 s less with 19 than with 10).
    # Its reports (results.json, Data Docs) are written while the run publishes.
    "validate": WorkerStage(
        library="great_expectations",
        niceness=19,
        module="servicervault.stages.validate",
        function="check",
        finishes_after_reply=True,
        deferred=("scipy.stats", "altair"),
    ),
}


class StageWorker:
    """One run of ``stage``'s function, in a process started (and importing) ahead of time."""

    def __init__(self, stage: str, *warm_up_args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.stage = stage
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_end, stage, warm_up_args), name=f"vault-{stage}", daemon=True
        )
        self._process.start()
        child_end.close()
        #: The worker's peak resident memory and the CPU seconds it had used (its import and
        #: warm-up included), known once it has sent its result.
        self.peak_rss_mib: float | None = None
        self.cpu_seconds: float | None = None
        self._finishing = False  # replied, and still doing what comes after the reply
        self._done = False  # sent everything it will send, and is ending on its own

    def run(self, *args: Any) -> Any:
        """The stage's function called with ``args``, in the worker; its errors re-raised."""
        self.send(*args)
        return self.result()

    def send(self, *args: Any) -> None:
        """Start the stage's function with ``args`` in the worker; :meth:`result` waits for it."""
        # A worker that ended early leaves the pipe broken, but the error it ended on (failing
        # to start, say) may still be waiting in it: read before declaring it dead.
        with suppress(BrokenPipeError):
            self._connection.send(args)

    def result(self) -> Any:
        """What the function sent with :meth:`send` returned; its errors re-raised."""
        ok, value, self.peak_rss_mib, self.cpu_seconds = self._receive()
        self._finishing = ok and WORKER_STAGES[self.stage].finishes_after_reply
        self._done = not self._finishing
        if not ok:
            raise value
        return value

    def finish(self) -> None:
        """Wait for what the worker does after its reply, if anything; its error re-raised."""
        if not self._finishing:
            return
        self._finishing = False
        ok, error = self._receive(after_reply=True)[:2]
        self._done = True
        if not ok:
            raise VaultError(
                f"the {self.stage} stage's result was recorded, but what follows it in its "
                f"process failed: {error}"
            ) from error

    def _receive(self, after_reply: bool = False) -> tuple[bool, Any, float, float]:
        try:
            return self._connection.recv()
        except EOFError:
            self._process.join()
            what = "after its result" if after_reply else "without a result"
            done = "its result stands" if after_reply else "its stage did not run"
            raise VaultError(
                f"the {self.stage} process ended {what} "
                f"(exit code {self._process.exitcode}); {done}"
            ) from None

    def close(self) -> None:
        """Stop the worker if it is still there (the run ended before its stage). One that has
        sent everything is let finish ending: terminated on its way out, it would leave its
        libraries' semaphores for multiprocessing to warn about."""
        self._connection.close()
        if self._done:
            self._process.join(timeout=WAIT_FOR_AN_ENDING_WORKER_S)
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _serve(connection: Connection, stage: str, warm_up_args: tuple[Any, ...]) -> None:
    """The worker's life: import and warm up, wait for the one job, send back its outcome or
    error."""
    threading.Thread(target=_exit_with_the_run, daemon=True).start()
    spec = WORKER_STAGES[stage]
    try:
        with _yielding(spec.niceness):
            module = _import(spec)
            run = getattr(module, spec.function)
            warmed = (getattr(module, spec.warm_up)(*warm_up_args),) if spec.warm_up else ()
        args = connection.recv()
    except EOFError:
        return  # the run ended before this stage
    except BaseException as exc:  # failing to start is the stage's outcome
        _reply(connection, stage, exc)
        return
    finish = None
    try:
        outcome: Any = run(*args, *warmed)
        if spec.finishes_after_reply:
            outcome, finish = outcome
    except BaseException as exc:
        outcome = exc
    _reply(connection, stage, outcome)
    if finish is not None:
        try:
            finish()
        except BaseException as exc:
            _reply(connection, stage, exc)
        else:
            _reply(connection, stage, None)
    _end_now()


def _import(spec: WorkerStage) -> Any:
    """Import the stage's library, the import this process exists to do early, then its
    module."""
    deferred_imports.defer(*spec.deferred)
    importlib.import_module(spec.library)
    return importlib.import_module(spec.module)


def _end_now() -> None:
    """End the worker once it has sent its last message, skipping the interpreter's teardown:
    unloading Great Expectations took the validation worker 0.8 s, which a nightly run spent
    waiting for it to exit. What the worker wrote is closed by then (its libraries hold no
    multiprocessing semaphore either: see gx_bridge's progress-bar lock)."""
    fast_exit(0)


@contextmanager
def _yielding(niceness: int) -> Iterator[None]:
    """Run the block at a lower CPU priority: a worker's import fills the cores the running
    stage leaves idle instead of taking them from it. The priority is restored after, where
    the system allows it (raising one's own priority back needs privileges on Linux)."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, before + niceness)
    try:
        yield
    finally:
        with suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, before)


def _exit_with_the_run() -> None:
    """End this process as soon as the run's process has ended, however it ended."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(1)


def _reply(connection: Connection, stage: str, value: Any) -> None:
    spent = (usage.peak_rss_mib(), usage.cpu_seconds())
    if not isinstance(value, BaseException):
        connection.send((True, value, *spent))
        return
    value.add_note(f"in the {stage} process:\n{traceback.format_exc()}")
    connection.send((False, _transportable(value), *spent))


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
