"""``vault tenants check``: everything about a tenant that can be checked without writing."""

from __future__ import annotations

from collections import Counter

from servicervault.config import list_tenant_ids, load_tenant
from servicervault.errors import VaultError
from servicervault.storage import MARKER, open_bucket


def check_tenant(tenant_id: str) -> list[str]:
    """Problems with the tenant, each a readable sentence; empty when all is well.

    Loads the file (schema, names of credential variables and whether they are set), and
    opens the bucket: it must exist, these credentials must reach it, and it must be marked
    as this tenant's. Two tenants may never share a bucket.
    """
    try:
        tenant = load_tenant(tenant_id)
        bucket = open_bucket(tenant.bucket_url, tenant)
        # Read-only on purpose: a check must not create or mark a mistyped bucket.
        if not bucket.exists(MARKER):
            return [
                f"bucket {bucket.url} is not provisioned for {tenant_id!r}; "
                f"run `vault tenants provision {tenant_id}`"
            ]
        bucket.check_owner(tenant.id)
        bucket.list("snapshots")
    except VaultError as exc:
        return [str(exc)]
    buckets = Counter(load_tenant(t).bucket_url for t in list_tenant_ids() if _loads(t))
    if buckets[tenant.bucket_url] > 1:
        return [f"bucket {tenant.bucket_url} is configured for more than one tenant"]
    return []


def _loads(tenant_id: str) -> bool:
    try:
        load_tenant(tenant_id)
    except VaultError:
        return False
    return True
