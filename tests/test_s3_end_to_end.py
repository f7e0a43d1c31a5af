"""Two tenants on a real S3-compatible server (Ceph RGW): the whole pipeline, isolation,
write-once objects proven by object versions, and verifiable drops with presigned links."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

import duckdb
import pytest
from botocore.exceptions import ClientError

from servicervault import drops
from servicervault.errors import VaultError
from servicervault.generator import generate_tapes
from servicervault.provision import provision
from servicervault.runner import STAGES, run_stages
from servicervault.stages.publish import analytics_path
from servicervault.storage import Bucket, S3Bucket, StorageError
from tests.conftest import MakeS3Tenant

pytestmark = [pytest.mark.slow, pytest.mark.s3]


def _deliver(bucket: S3Bucket, tapes: list[Path]) -> set[str]:
    for tape in tapes:
        bucket.put_file(tape, f"inbound/servicing_tape/{tape.name}")
    return {line.split("|")[1] for t in tapes for line in t.read_text().splitlines()}


def _bucket(tenant) -> S3Bucket:

    bucket = Bucket.for_tenant(tenant)
    assert isinstance(bucket, S3Bucket)
    return bucket


def test_two_tenants_run_isolated_on_a_real_s3_server(
    make_s3_tenant: MakeS3Tenant, tmp_path: Path
) -> None:
    alpha, beta = make_s3_tenant("alpha"), make_s3_tenant("beta")
    for tenant in (alpha, beta):
        assert provision(tenant)[1:] == [
            "object versioning enabled", "write access checked", f"marked for {tenant.id}",
        ]  # fmt: skip
    a, b = _bucket(alpha), _bucket(beta)
    loans_a = _deliver(a, generate_tapes(150, 4, tmp_path / "a", seed=1))
    loans_b = _deliver(b, generate_tapes(120, 5, tmp_path / "b", seed=2))

    for tenant in (alpha, beta):
        records = run_stages(tenant)
        assert [(r.stage, r.status) for r in records] == [(s, "ok") for s in STAGES], records[-1]

    # Each drop holds exactly its own tenant's loans, and verifies against its manifest.
    for tenant, bucket, loans in ((alpha, a, loans_a), (beta, b, loans_b)):
        drop_id = drops.latest_drop_id(bucket)
        verified = drops.verify(f"{bucket.url}/drops/{drop_id}/", tenant)
        assert verified.files >= 3 and verified.rows > 0
        con = duckdb.connect(str(analytics_path(tenant)), read_only=True)
        published = {r[0] for r in con.execute("SELECT loan_id FROM gold.loan_snapshot").fetchall()}
        con.close()
        assert published == loans
    assert not loans_a & loans_b

    # Write-once, proven by the server: every snapshot and drop object has exactly one version,
    # and an attempt to overwrite one is refused without creating a second.
    keys = a.list("snapshots") + a.list("drops")
    versions = a.client.list_object_versions(Bucket=a.name)["Versions"]
    counts = {v["Key"]: sum(1 for w in versions if w["Key"] == v["Key"]) for v in versions}
    assert keys and all(counts[k] == 1 for k in keys)
    with pytest.raises(StorageError, match="already exists and objects are write-once"):
        a.put_bytes(b"tampered", keys[0])
    after = a.client.list_object_versions(Bucket=a.name, Prefix=keys[0])["Versions"]
    assert len(after) == 1

    # Secrets never leave the environment: not in the ledger, manifests, warehouse, published
    # database, validation results or any object in the bucket.
    secrets = [os.environ["ALPHA_SECRET"].encode(), os.environ["BETA_SECRET"].encode()]
    local = [p for p in Path(os.environ["VAULT_HOME"]).rglob("*") if p.is_file()]
    assert any(p.name == "runs.jsonl" for p in local) and any(p.suffix == ".duckdb" for p in local)
    for path in local:
        data = path.read_bytes()
        assert not any(s in data for s in secrets), path
    for key in a.list("snapshots") + a.list("drops") + a.list("inbound"):
        assert not any(s in a.read_bytes(key) for s in secrets), key

    # The server enforces isolation: beta's credentials cannot list, read or write alpha's bucket.
    for call in (
        lambda: b.client.list_objects_v2(Bucket=a.name),
        lambda: b.client.get_object(Bucket=a.name, Key=keys[0]),
        lambda: b.client.put_object(Bucket=a.name, Key="intruder", Body=b"x"),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_misconfigured_tenant_never_touches_another_tenants_bucket(
    make_s3_tenant: MakeS3Tenant,
) -> None:
    owner = make_s3_tenant("owner")
    provision(owner)
    bucket = _bucket(owner)
    bucket.put_bytes(b"|x", "inbound/servicing_tape/tape.txt")
    before = bucket.client.list_object_versions(Bucket=bucket.name)["Versions"]

    # Config points at owner's bucket with its own (other) keys: the server says no.
    wrong_keys = make_s3_tenant("stray", bucket_of="owner")
    [record] = run_stages(wrong_keys, ("extract",))
    assert record.status == "failed" and "access denied" in record.message
    with pytest.raises(VaultError, match="exists but these credentials cannot use it"):
        provision(wrong_keys)

    # Config points at owner's bucket *with owner's keys* under another tenant id: the bucket's
    # tenant marker refuses it before anything is read or written.
    borrowed = make_s3_tenant("borrower", bucket_of="owner", keys_of="owner")
    [record] = run_stages(borrowed, ("extract",))
    assert record.status == "failed"
    assert "belongs to tenant 'owner', not 'borrower'" in record.message
    assert bucket.client.list_object_versions(Bucket=bucket.name)["Versions"] == before


def test_presigned_links_serve_the_drop_and_tampering_is_caught(
    make_s3_tenant: MakeS3Tenant, tmp_path: Path
) -> None:
    tenant = make_s3_tenant("gamma")
    provision(tenant)
    bucket = _bucket(tenant)
    _deliver(bucket, generate_tapes(80, 3, tmp_path, seed=5))
    assert all(r.status == "ok" for r in run_stages(tenant))
    drop_id = drops.latest_drop_id(bucket)
    manifest = drops.verify(f"{bucket.url}/drops/{drop_id}/manifest.json", tenant)
    links = dict(drops.presign(tenant, drop_id, 600))
    assert set(links) >= {"manifest.json", "portfolio_monthly.parquet", "data_dictionary.md"}
    body = urllib.request.urlopen(links["portfolio_monthly.parquet"], timeout=10).read()
    listed = json.loads(bucket.read_bytes(f"drops/{drop_id}/manifest.json"))
    [entry] = [f for f in listed["files"] if f["file"] == "portfolio_monthly.parquet"]
    assert hashlib.sha256(body).hexdigest() == entry["sha256"] and manifest.rows > 0

    # Someone slips an extra file into the drop folder: verification names it.
    bucket.client.put_object(Bucket=bucket.name, Key=f"drops/{drop_id}/extra.csv", Body=b"a,b")
    with pytest.raises(drops.DropMismatch, match=r"extra\.csv: present but not in the manifest"):
        drops.verify(f"{bucket.url}/drops/{drop_id}/", tenant)
