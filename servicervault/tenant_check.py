"""``vault tenants check``: everything about a tenant that can be checked before a run."""

from __future__ import annotations

import os

from servicervault.config import load_tenant
from servicervault.errors import VaultError
from servicervault.storage import Bucket


def check_tenant(tenant_id: str) -> list[str]:
    """Problems with the tenant, each a readable sentence; empty when all is well."""
    try:
        tenant = load_tenant(tenant_id)
    except VaultError as exc:
        return [str(exc)]
    problems = []
    for env_name in (tenant.storage.access_key_id_env, tenant.storage.secret_access_key_env):
        if env_name and not os.environ.get(env_name):
            problems.append(f"environment variable {env_name} (named in the config) is not set")
    try:
        bucket = Bucket.for_tenant(tenant)
        probe = bucket.root / ".vault-write-check"
        bucket.root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except VaultError as exc:
        problems.append(str(exc))
    except OSError as exc:
        problems.append(f"bucket {tenant.bucket_url} is not writable: {exc.strerror}")
    return problems
