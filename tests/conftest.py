"""Shared fixtures: an isolated VAULT_HOME and tenants folder per test, tenants and tapes."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from servicervault.config import PROJECT_ROOT, Tenant, load_tenant
from servicervault.generator import generate_tapes
from servicervault.storage import Bucket


@pytest.fixture
def vault_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private VAULT_HOME and tenants folder, so no test sees another's state."""
    home = tmp_path / "vault"
    monkeypatch.setenv("VAULT_HOME", str(home))
    monkeypatch.setenv("VAULT_TENANTS_DIR", str(tmp_path / "tenants"))
    (tmp_path / "tenants").mkdir()
    return home


MakeTenant = Callable[..., Tenant]


@pytest.fixture
def make_tenant(vault_home: Path) -> MakeTenant:
    """Write ``tenants/<id>.yaml`` with a file bucket under VAULT_HOME and load it."""

    def make(tenant_id: str = "acme", **overrides: object) -> Tenant:
        spec = {
            "id": tenant_id,
            "name": f"{tenant_id.title()} Servicing",
            "storage": {"bucket": f"file://${{VAULT_HOME}}/buckets/{tenant_id}"},
            "sources": [
                {
                    "name": "servicing_tape",
                    "layout": "fannie_sflp",
                    "inbound": "inbound/servicing_tape/",
                }
            ],
        }
        spec.update(overrides)
        folder = vault_home.parent / "tenants"
        (folder / f"{tenant_id}.yaml").write_text(yaml.safe_dump(spec))
        return load_tenant(tenant_id)

    return make


@pytest.fixture(scope="session")
def small_tapes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """300 loans x 18 months of generated tapes, shared read-only by the session."""
    return generate_tapes(300, 18, tmp_path_factory.mktemp("tapes"), start="2021-01", seed=7)


Deliver = Callable[[Tenant, list[Path]], list[str]]


@pytest.fixture
def deliver() -> Deliver:
    """Put tape files into the tenant's inbound prefix, as a servicer's upload would."""

    def put(tenant: Tenant, tapes: list[Path]) -> list[str]:
        bucket = Bucket.for_tenant(tenant)
        prefix = tenant.sources[0].inbound
        for tape in tapes:
            bucket.put_file(tape, f"{prefix}{tape.name}")
        return [f"{prefix}{tape.name}" for tape in tapes]

    return put


@pytest.fixture(scope="session")
def ceph() -> str:
    """A real S3-compatible server (one-node Ceph RGW on loopback), started once per session.

    ``scripts/ceph_s3.sh start`` is idempotent: CI starts the server before the suite and this
    reuses it; on a developer machine it installs (Debian packages) and starts it.
    """
    script = PROJECT_ROOT / "scripts" / "ceph_s3.sh"
    done = subprocess.run([str(script), "start"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"could not start the Ceph S3 server:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def bucket_suffix() -> str:
    """Bucket names unique to this session: the server may outlive one test run."""
    return uuid.uuid4().hex[:8]


MakeS3Tenant = Callable[..., Tenant]


@pytest.fixture
def make_s3_tenant(
    ceph: str, bucket_suffix: str, vault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> MakeS3Tenant:
    """A tenant on the Ceph server with its own S3 user, keys in its own env variables."""

    def make(tenant_id: str, *, bucket_of: str | None = None, keys_of: str | None = None) -> Tenant:
        owner = keys_of or tenant_id
        key_id = f"VAULT{owner.upper().replace('-', '')}".ljust(20, "0")[:20]
        secret = f"secret-{owner}-".ljust(40, "x")
        subprocess.run(
            [str(PROJECT_ROOT / "scripts" / "ceph_s3.sh"), "user", f"test-{owner}", key_id, secret],
            check=True,
        )
        env = tenant_id.upper().replace("-", "_")
        monkeypatch.setenv(f"{env}_KEY_ID", key_id)
        monkeypatch.setenv(f"{env}_SECRET", secret)
        spec = {
            "id": tenant_id,
            "name": f"{tenant_id.title()} Servicing",
            "storage": {
                "bucket": f"s3://vault-{bucket_of or tenant_id}-{bucket_suffix}",
                "endpoint": ceph,
                "region": "us-east-1",
                "url_style": "path",
                "access_key_id_env": f"{env}_KEY_ID",
                "secret_access_key_env": f"{env}_SECRET",
            },
            "sources": [
                {
                    "name": "servicing_tape",
                    "layout": "fannie_sflp",
                    "inbound": "inbound/servicing_tape/",
                }
            ],
        }
        (vault_home.parent / "tenants" / f"{tenant_id}.yaml").write_text(yaml.safe_dump(spec))
        return load_tenant(tenant_id)

    return make
