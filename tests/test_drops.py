"""Drops read back: verification against the manifest, and the CLI around it."""

from __future__ import annotations

import json

import duckdb
import pytest
from typer.testing import CliRunner

from servicervault.cli import app
from servicervault.drops import DropMismatch, verify
from servicervault.stages.drop import drop
from servicervault.stages.publish import analytics_path
from servicervault.storage import Bucket
from tests.conftest import MakeTenant


@pytest.fixture
def dropped(make_tenant: MakeTenant):
    """A real drop of a small hand-made publication (no pipeline run needed)."""
    tenant = make_tenant()
    path = analytics_path(tenant)
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE SCHEMA gold; CREATE SCHEMA silver;"
        "CREATE TABLE gold.portfolio_monthly AS "
        "SELECT DATE '2024-01-01' AS period, 2 AS active_loans;"
        "CREATE TABLE main.publication AS SELECT 'b1' AS build_id, ['S1'] AS snapshot_ids"
    )
    con.close()
    result = drop(tenant)
    return tenant, f"{Bucket.for_tenant(tenant).url}/drops/{result.drop_id}/"


def test_an_untouched_drop_verifies(dropped) -> None:
    _, uri = dropped
    result = verify(uri)
    assert (result.files, result.rows) == (2, 1)  # the table and its data dictionary
    out = CliRunner().invoke(app, ["verify-drop", uri + "manifest.json"])
    assert out.exit_code == 0 and "2 files and 1 rows match the manifest" in out.output


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda f: f.write_bytes(f.read_bytes() + b"x"), "bytes, manifest says"),
        (lambda f: f.unlink(), "listed in the manifest but missing"),
        (lambda f: f.with_name("extra.csv").write_text("a"), "extra.csv: present but not in"),
    ],
)
def test_any_difference_fails_loudly(dropped, tamper, message: str) -> None:
    tenant, uri = dropped
    root = Bucket.for_tenant(tenant).root
    tamper(next(root.glob("drops/*/portfolio_monthly.parquet")))
    with pytest.raises(DropMismatch, match=message):
        verify(uri)
    out = CliRunner().invoke(app, ["verify-drop", uri])
    assert out.exit_code == 1 and "does not match its manifest" in out.output


def test_a_manifest_that_lies_about_rows_is_caught(dropped) -> None:
    tenant, uri = dropped
    bucket = Bucket.for_tenant(tenant)
    key = uri.split(bucket.url + "/", 1)[1] + "manifest.json"
    manifest = json.loads(bucket.read_bytes(key))
    manifest["files"][0]["rows"] = 99
    bucket.local_path(key).write_text(json.dumps(manifest))
    with pytest.raises(DropMismatch, match="1 rows, manifest says 99"):
        verify(uri)


def test_presigned_links_need_s3_and_a_sane_duration(dropped) -> None:
    tenant, _ = dropped
    out = CliRunner().invoke(app, ["drop", "--tenant", tenant.id, "--presign", "9d"])
    assert out.exit_code == 2 and "at most 7 days" in out.output
    out = CliRunner().invoke(app, ["drop", "--tenant", tenant.id, "--presign", "1h"])
    assert out.exit_code == 1 and "presigned links need an s3:// bucket" in out.output
