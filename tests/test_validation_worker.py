"""The validation worker: a separate process, so its errors and its end must cross over."""

from __future__ import annotations

import pytest

from servicervault.errors import NotReadyError, VaultError
from servicervault.validation_worker import ValidationWorker
from tests.conftest import MakeTenant

pytestmark = pytest.mark.slow


def test_an_error_in_the_worker_is_raised_in_the_run_with_where_it_happened(
    make_tenant: MakeTenant,
) -> None:
    worker = ValidationWorker()
    try:
        with pytest.raises(NotReadyError, match="has no warehouse yet") as raised:
            worker.validate(make_tenant(), "run-1", None, [])
    finally:
        worker.close()
    assert any("in the validation process" in note for note in raised.value.__notes__)
    assert worker.peak_rss_mib is not None and worker.peak_rss_mib > 100  # GX was imported


def test_a_run_that_ends_before_validating_stops_its_worker() -> None:
    worker = ValidationWorker()
    worker.close()
    process = worker._process  # what matters is that no process is left behind
    assert not process.is_alive() and process.exitcode is not None


def test_a_worker_that_died_is_a_clear_error_not_a_hang(make_tenant: MakeTenant) -> None:
    worker = ValidationWorker()
    worker._process.kill()  # as the out-of-memory killer would
    worker._process.join()
    with pytest.raises(VaultError, match="validation process ended without a result"):
        worker.validate(make_tenant(), "run-1", None, [])
    worker.close()
