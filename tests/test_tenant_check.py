"""vault tenants check: reports problems without creating or changing anything."""

from __future__ import annotations

from typer.testing import CliRunner

from servicervault.cli import app
from servicervault.provision import provision
from servicervault.storage import MARKER, LocalBucket
from tests.conftest import MakeTenant


def test_check_reports_an_unprovisioned_bucket_without_creating_it(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(storage={"bucket": "file://${VAULT_HOME}/buckets/typo"})
    bucket = LocalBucket(tenant.bucket_url)
    out = CliRunner().invoke(app, ["tenants", "check", tenant.id])
    assert out.exit_code == 1 and "is not provisioned for 'acme'" in out.output
    assert not bucket.root.exists()

    assert provision(tenant)[-1] == "marked for acme"
    assert bucket.exists(MARKER)
    out = CliRunner().invoke(app, ["tenants", "check", tenant.id])
    assert out.exit_code == 0 and "ok" in out.output


def test_missing_credentials_and_shared_buckets_are_reported(
    make_tenant: MakeTenant, monkeypatch
) -> None:
    s3 = {
        "bucket": "s3://acme-bucket",
        "access_key_id_env": "ACME_KEY",
        "secret_access_key_env": "ACME_SECRET",
    }
    make_tenant(storage=s3)
    monkeypatch.delenv("ACME_KEY", raising=False)
    out = CliRunner().invoke(app, ["tenants", "check", "acme"])
    assert "environment variable ACME_KEY (storage.access_key_id_env) is not set" in out.output

    first = make_tenant("one", storage={"bucket": "file://${VAULT_HOME}/buckets/shared"})
    make_tenant("two", storage={"bucket": "file://${VAULT_HOME}/buckets/shared"})
    provision(first)
    out = CliRunner().invoke(app, ["tenants", "check", "one"])
    assert out.exit_code == 1 and "configured for more than one tenant" in out.output
