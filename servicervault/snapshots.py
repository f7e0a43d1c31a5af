"""The committed snapshots in a tenant's bucket, as their manifests describe them.

Extract writes them; the transform reads which exist. Kept apart from the extract stage so
that the transform's worker does not import what landing a tape needs (pyarrow, the tape
parser: 0.15-0.19 s of a warm-up that a nightly run waits for).
"""

from __future__ import annotations

import json

from servicervault.config import Tenant
from servicervault.storage import Bucket


def snapshot_prefix(source: str, snapshot_id: str) -> str:
    return f"snapshots/{source}/{snapshot_id}/"


def read_manifests(bucket: Bucket, source: str) -> list[dict]:
    """Manifests of every committed snapshot of ``source``, oldest first."""
    keys = [k for k in bucket.list(f"snapshots/{source}/") if k.endswith("/manifest.json")]
    return [json.loads(bucket.read_bytes(k)) for k in keys]


def committed_snapshot_ids(tenant: Tenant) -> list[str]:
    """Ids of every committed snapshot of every source of the tenant, oldest first."""
    bucket = Bucket.for_tenant(tenant)
    return sorted(m["snapshot_id"] for s in tenant.sources for m in read_manifests(bucket, s.name))
