"""Transient S3 faults: a server that goes away mid-run is retried with backoff; a run that
cannot finish fails clearly and never leaves a partial snapshot visible as complete."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import boto3
import pytest

from servicervault.config import PROJECT_ROOT, Tenant
from servicervault.generator import generate_tapes
from servicervault.provision import provision
from servicervault.runner import run_stages
from servicervault.stages.extract import read_manifests
from servicervault.storage import Bucket, S3Bucket
from tests.conftest import MakeS3Tenant

pytestmark = [pytest.mark.slow, pytest.mark.s3]


def ceph(command: str) -> None:
    subprocess.run([str(PROJECT_ROOT / "scripts" / "ceph_s3.sh"), command], check=True)


@pytest.fixture
def events():
    """The default boto3 session's events, where a test hooks into the S3 calls a run makes."""
    boto3.setup_default_session()
    yield boto3.DEFAULT_SESSION.events
    boto3.setup_default_session()
    ceph("start-rgw")  # whatever happened in the test, leave the server up


def _tenant(make_s3_tenant: MakeS3Tenant, name: str, tmp_path: Path) -> tuple[Tenant, S3Bucket]:
    tenant = make_s3_tenant(name)
    provision(tenant)
    bucket = Bucket.for_tenant(tenant)
    assert isinstance(bucket, S3Bucket)
    for tape in generate_tapes(60, 3, tmp_path, seed=9):
        bucket.put_file(tape, f"inbound/servicing_tape/{tape.name}")
    return tenant, bucket


def test_a_server_restarting_during_a_run_is_retried_and_the_run_completes(
    make_s3_tenant: MakeS3Tenant, tmp_path: Path, events
) -> None:
    tenant, bucket = _tenant(make_s3_tenant, "delta", tmp_path)
    retried = threading.Event()

    def restart_when_a_call_fails(caught_exception: Exception | None = None, **_: object) -> None:
        if caught_exception is not None and not retried.is_set():
            retried.set()
            threading.Thread(target=ceph, args=("start-rgw",)).start()

    events.register("needs-retry.s3", restart_when_a_call_fails)
    ceph("stop-rgw")
    records = run_stages(tenant)
    assert retried.is_set()  # the run did hit the outage...
    assert [r.status for r in records] == ["ok"] * 5  # ...and finished once the server was back
    assert len(read_manifests(bucket, "servicing_tape")) == 1


def test_an_outage_mid_publish_leaves_no_snapshot_and_a_rerun_lands_it_once(
    make_s3_tenant: MakeS3Tenant,
    tmp_path: Path,
    events,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant, bucket = _tenant(make_s3_tenant, "epsilon", tmp_path)
    monkeypatch.setenv("VAULT_S3_MAX_ATTEMPTS", "2")
    snapshot_puts: list[str] = []

    def stop_after_first_snapshot_file(params: dict, **_: object) -> None:
        key = params.get("Key", "")
        if key.startswith("snapshots/"):
            snapshot_puts.append(key)
            if len(snapshot_puts) == 2:  # the first file is in; the rest and the manifest not
                ceph("stop-rgw")

    events.register("before-parameter-build.s3.PutObject", stop_after_first_snapshot_file)
    [record] = run_stages(tenant, ("extract",))
    assert record.status == "failed"
    assert "failed after retries" in record.message and "Could not connect" in record.message

    ceph("start-rgw")
    events.unregister("before-parameter-build.s3.PutObject", stop_after_first_snapshot_file)
    assert bucket.list("snapshots") and read_manifests(bucket, "servicing_tape") == []

    monkeypatch.setenv("VAULT_S3_MAX_ATTEMPTS", "8")
    records = run_stages(tenant)
    assert [r.status for r in records] == ["ok"] * 5
    [manifest] = read_manifests(bucket, "servicing_tape")
    transform = records[1]
    assert transform.details["snapshot_ids"] == [manifest["snapshot_id"]]
    assert transform.rows == manifest["rows_landed"]  # the half-published snapshot adds nothing
