"""The stage workers: separate processes, so their errors and their end must cross over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from servicervault.contracts import contract
from servicervault.errors import NotReadyError, VaultError
from servicervault.stage_worker import WORKER_STAGES, StageWorker, _transportable
from servicervault.stages.validate import warehouse_path
from tests.conftest import MakeTenant

pytestmark = pytest.mark.slow


@pytest.fixture
def worker() -> Iterator[StageWorker]:
    started = StageWorker("validate")
    yield started
    started.close()


def test_an_error_in_the_worker_is_raised_in_the_run_with_where_it_happened(
    make_tenant: MakeTenant, worker: StageWorker
) -> None:
    with pytest.raises(NotReadyError, match="has no warehouse yet") as raised:
        worker.run(make_tenant(), "run-1", None, [])
    assert any("in the validate process" in note for note in raised.value.__notes__)
    assert worker.peak_rss_mib is not None and worker.peak_rss_mib > 100  # GX was imported


def test_an_error_while_the_worker_starts_is_the_error_the_run_reports(
    make_tenant: MakeTenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker fails and exits before the job is sent; its error still reaches the run."""
    (tmp_path / "great_expectations.py").write_text("raise ImportError('a broken GX install')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # a spawned process starts with this sys.path
    worker = StageWorker("validate")
    worker._process.join()  # it has ended before validate is called
    try:
        with pytest.raises(ImportError, match="a broken GX install"):
            worker.run(make_tenant(), "run-1", None, [])
    finally:
        worker.close()


def test_an_error_the_run_could_not_rebuild_keeps_its_standing_and_its_words() -> None:
    class NeedsTwo(Exception):
        def __init__(self, message: str, metrics: list[str]) -> None:
            super().__init__(message)

    class VaultNeedsTwo(VaultError):
        def __init__(self, message: str, where: str) -> None:
            super().__init__(message)

    bug = NeedsTwo("metric failed", ["m"])
    bug.add_note("in the validate process: traceback")
    sent = _transportable(bug)
    assert type(sent) is RuntimeError and str(sent) == "NeedsTwo: metric failed"
    assert sent.__notes__ == ["in the validate process: traceback"]
    assert type(_transportable(VaultNeedsTwo("no table", "x"))) is VaultError
    plain = NotReadyError("not yet")
    assert _transportable(plain) is plain


def test_validation_replies_first_and_its_reports_follow_or_fail_clearly(
    make_tenant: MakeTenant,
) -> None:
    """The worker sends the outcome, then writes results.json and Data Docs; the run waits for
    them at its end, and learns if they could not be written."""
    tenant = make_tenant()
    warehouse_path(tenant).parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(warehouse_path(tenant))).close()  # no tables: every suite fails
    worker = StageWorker("validate")
    try:
        outcome = worker.run(tenant, "run-1", None, [])
        assert not outcome.success and outcome.failed[0].expectation == "table_exists"
        worker.finish()
        assert json.loads(outcome.results_json.read_text())["success"] is False
        assert outcome.data_docs_index.is_file()
    finally:
        worker.close()
    assert worker._process.exitcode == 0  # it ended on its own, not terminated on its way out

    blocked = tenant.home / "validations" / "run-2" / "data_docs"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the Data Docs folder goes\n")
    worker = StageWorker("validate")
    try:
        assert not worker.run(tenant, "run-2", None, []).success  # the outcome still arrives
        with pytest.raises(VaultError, match="validate stage's result was recorded, but what"):
            worker.finish()
    finally:
        worker.close()


def test_a_worker_that_has_sent_everything_ends_without_leaving_anything_behind(
    make_tenant: MakeTenant,
) -> None:
    """The validation worker ends with os._exit once its reports are written, skipping the
    interpreter's teardown; nothing multiprocessing tracks (a semaphore, say) may be left then.
    Run in a child, as multiprocessing reports leftovers when the run's process exits."""
    tenant = make_tenant()
    warehouse_path(tenant).parent.mkdir(parents=True, exist_ok=True)
    table = contract("gold.portfolio_monthly")  # one empty table: its metrics are computed
    columns = ", ".join(f"{c.name} {c.type}" for c in table.columns)
    with duckdb.connect(str(warehouse_path(tenant))) as con:
        con.execute(f"CREATE SCHEMA gold; CREATE TABLE gold.portfolio_monthly ({columns})")
    script = (
        "from servicervault.config import load_tenant\n"
        "from servicervault.stage_worker import StageWorker\n"
        "if __name__ == '__main__':\n"
        f"    tenant = load_tenant({tenant.id!r})\n"
        "    worker = StageWorker('validate')\n"
        "    outcome = worker.run(tenant, 'run-1', None, [])\n"
        "    worker.finish()\n"
        "    worker.close()\n"
        "    print(outcome.success, worker._process.exitcode)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "0"]
    assert "leaked" not in out.stderr, out.stderr


def test_a_run_that_ends_before_validating_stops_its_worker(worker: StageWorker) -> None:
    worker.close()
    process = worker._process  # what matters is that no process is left behind
    assert not process.is_alive() and process.exitcode is not None


def test_a_worker_that_died_is_a_clear_error_not_a_hang(
    make_tenant: MakeTenant, worker: StageWorker
) -> None:
    worker._process.kill()  # as the out-of-memory killer would
    worker._process.join()
    with pytest.raises(VaultError, match="validate process ended without a result"):
        worker.run(make_tenant(), "run-1", None, [])


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie has ended, waiting for init to reap it


def test_a_busy_worker_ends_when_the_run_is_killed(tmp_path: Path) -> None:
    """A killed `vault run` runs no clean-up; its worker, busy (here: an import that takes ten
    minutes), must not live on holding the warehouse open."""
    (tmp_path / "great_expectations.py").write_text("import time\ntime.sleep(600)\n")
    script = (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from servicervault.stage_worker import StageWorker\n"
        "if __name__ == '__main__':\n"
        "    worker = StageWorker('validate')\n"
        "    print(worker._process.pid, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    # Read one line, not to the end: a surviving worker would hold the output pipe open.
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(run.stdout.readline())
    run.wait()
    deadline = time.monotonic() + 60
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)


def test_a_worker_imports_at_a_lower_priority_then_takes_its_own_back() -> None:
    """Run in a child, so a test run without the right to raise it back is not left lowered."""
    script = (
        "import os\n"
        "from servicervault.stage_worker import _yielding\n"
        "before = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "with _yielding(5):\n"
        "    during = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "print(before, during, os.getpriority(os.PRIO_PROCESS, 0))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, during, after = (int(x) for x in out.stdout.split())
    assert during == min(before + 5, 19)  # Linux's lowest priority is 19
    # Linux lets only a privileged process raise its priority again; the others stay lowered.
    assert after == (before if os.geteuid() == 0 else during)


def test_the_validation_worker_imports_behind_the_transform_worker() -> None:
    """Both import during earlier stages; the transform's start waits for its worker's import
    to end, while validation's import has the whole transform to end in."""
    assert 0 < WORKER_STAGES["transform"].niceness < WORKER_STAGES["validate"].niceness


def test_the_validation_worker_imports_what_gx_rarely_uses_only_when_it_is_used() -> None:
    """Great Expectations imports SciPy's statistics and Altair for expectations the contracts
    do not use; the worker's import leaves them to their first use, which still works. In a
    child, as this process may have imported them already."""
    script = (
        "import sys\n"
        "from servicervault.stage_worker import WORKER_STAGES, _import\n"
        "_import(WORKER_STAGES['validate'])\n"
        "def kind(name):\n"
        "    return type(sys.modules[name]).__name__\n"
        "print(kind('scipy.stats'), kind('altair'))\n"
        "from great_expectations.expectations.core import "
        "expect_column_kl_divergence_to_be_less_than as kl\n"
        "print(kl.stats.entropy([0.5, 0.5], [0.5, 0.5]), kind('scipy.stats'))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    at_import, after_use = out.stdout.splitlines()
    assert at_import == "_Deferred _Deferred"
    assert after_use == "0.0 module"
