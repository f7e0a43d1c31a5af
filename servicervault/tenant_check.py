"""``vault tenants check``: everything about a tenant that can be checked without writing."""

from __future__ import annotations

from collections import Counter

from servicervault.config import list_tenant_ids, load_tenant
from servicervault.errors import VaultError
from servicervault.storage import Bucket


def check_tenant(tenant_id: str) -> list[str]:
    """Problems with the tenant, each a readable sentence; empty when all is well.

    Loads the file (schema, names of credential variables and whether they are set), and
    opens the bucket: it must exist, these credentials must reach it, and it must be marked
    as this tenant's. Two tenants may never share a bucket.
    """
    try:
        tenant = load_tenant(tenant_id)
        Bucket.for_tenant(tenant).list("snapshots")
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
