"""Shared fixtures: an isolated VAULT_HOME and tenants folder per test, tenants and tapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from servicervault.config import Tenant, load_tenant
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
