"""Extract: new files land once as a committed snapshot; bad files land nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from servicervault.stages.extract import ExtractError, extract, read_manifests
from servicervault.storage import Bucket, sha256_file
from tests.conftest import Deliver, MakeTenant


def test_files_land_once_with_a_complete_manifest(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path]
) -> None:
    tenant = make_tenant()
    deliver(tenant, small_tapes[:3])
    [first] = extract(tenant)
    bucket = Bucket.for_tenant(tenant)
    [manifest] = read_manifests(bucket, "servicing_tape")
    assert manifest["snapshot_id"] == first.snapshot_id
    assert manifest["dlt_load_id"] == first.load_id
    assert [f["sha256"] for f in manifest["files"]] == [sha256_file(p) for p in small_tapes[:3]]
    rows_in = sum(len(p.read_text().splitlines()) for p in small_tapes[:3])
    assert sum(f["rows_in"] for f in manifest["files"]) == rows_in
    assert manifest["rows_landed"] + manifest["rows_quarantined"] == rows_in
    for table, spec in manifest["tables"].items():
        for f in spec["files"]:
            path = bucket.local_path(f["key"])
            assert sha256_file(path) == f["sha256"], table
            assert pq.read_metadata(path).num_rows == f["rows"]
    assert manifest["tables"]["loan_month"]["rows"] == manifest["rows_landed"]
    assert len(manifest["schema_fingerprint"]) == 64

    # Nothing new: nothing lands. The same bytes under a new name are not landed twice.
    [again] = extract(tenant)
    assert again.snapshot_id is None and len(again.already_landed) == 3
    bucket.put_file(small_tapes[0], "inbound/servicing_tape/resent_copy.txt")
    [resent] = extract(tenant)
    assert resent.snapshot_id is None and len(resent.already_landed) == 4

    # A new month lands exactly its own rows as a second snapshot.
    deliver(tenant, small_tapes[3:4])
    [second] = extract(tenant)
    assert second.rows_landed == len(small_tapes[3].read_text().splitlines())
    assert len(read_manifests(bucket, "servicing_tape")) == 2


def test_an_unreadable_file_lands_nothing_and_is_kept(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    tenant = make_tenant()
    bad = tmp_path / "sflp_broken.txt"
    bad.write_bytes(b"")
    deliver(tenant, [small_tapes[0], bad])
    with pytest.raises(ExtractError, match=r"nothing landed: sflp_broken\.txt: the file is empty"):
        extract(tenant)
    bucket = Bucket.for_tenant(tenant)
    assert read_manifests(bucket, "servicing_tape") == []
    assert bucket.list("snapshots/") == []
    assert bucket.exists("inbound/servicing_tape/sflp_broken.txt")
    # Once the servicer replaces the file, the good one lands along with it.
    bucket.local_path("inbound/servicing_tape/sflp_broken.txt").unlink()
    [result] = extract(tenant)
    assert [f["key"] for f in result.files] == [f"inbound/servicing_tape/{small_tapes[0].name}"]
    assert json.loads(bucket.read_bytes(result.manifest_key or ""))["rows_quarantined"] == 0


def test_a_file_may_hold_many_months(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    """Fannie publishes one file per acquisition quarter holding every month of its loans."""
    combined = tmp_path / "quarter.txt"
    combined.write_text("".join(p.read_text() for p in small_tapes[:3]))
    tenant = make_tenant()
    deliver(tenant, [combined])
    [result] = extract(tenant)
    assert result.rows_landed == len(combined.read_text().splitlines())
    bucket = Bucket.for_tenant(tenant)
    [manifest] = read_manifests(bucket, "servicing_tape")
    loan_files = [bucket.local_path(f["key"]) for f in manifest["tables"]["loan"]["files"]]
    loans = pq.read_table(loan_files).to_pylist()
    # One attribute row per loan, taken from its latest month in the file.
    latest: dict[str, dt.date] = {}
    for line in combined.read_text().splitlines():
        _, loan_id, period = line.split("|", 3)[:3]
        month = dt.date(int(period[2:]), int(period[:2]), 1)
        latest[loan_id] = max(month, latest.get(loan_id, month))
    assert {row["loan_id"]: row["as_of_period"] for row in loans} == latest
    assert len(loans) == len(latest)
