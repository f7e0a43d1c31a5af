"""``vault tenants provision``: make a tenant's bucket ready, or refuse to use it.

Creates the bucket when it does not exist, turns on object versioning (so every write is
kept and write-once can be proven), checks that the tenant's credentials can write, and
marks the bucket as the tenant's. A bucket that exists but belongs to another account, or
is marked for another tenant, is refused.
"""

from __future__ import annotations

import uuid

from servicervault.config import Tenant
from servicervault.storage import MARKER, LocalBucket, S3Bucket, StorageError, open_bucket


def provision(tenant: Tenant) -> list[str]:
    """Provision the tenant's bucket; return what was done, one line per step."""
    bucket = open_bucket(tenant.bucket_url, tenant)
    if isinstance(bucket, LocalBucket):
        created = not bucket.root.exists()
        bucket.check_owner(tenant.id)  # creates and marks a local bucket
        return [f"{'created' if created else 'found'} {bucket.url}", f"marked for {tenant.id}"]
    assert isinstance(bucket, S3Bucket)
    steps = [_ensure_bucket(bucket)]
    bucket.call(
        "enable versioning on",
        "",
        bucket.client.put_bucket_versioning,
        Bucket=bucket.name,
        VersioningConfiguration={"Status": "Enabled"},
    )
    steps.append("object versioning enabled")
    _probe_write(bucket)
    steps.append("write access checked")
    if bucket.exists(MARKER):
        bucket.check_owner(tenant.id)
        steps.append(f"already marked for {tenant.id}")
    else:
        bucket.mark_owner(tenant.id)
        steps.append(f"marked for {tenant.id}")
    return steps


def _ensure_bucket(bucket: S3Bucket) -> str:
    from botocore.exceptions import ClientError

    try:
        bucket.client.head_bucket(Bucket=bucket.name)
        return f"found {bucket.url}"
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403:
            raise StorageError(
                f"bucket {bucket.url} exists but these credentials cannot use it "
                "(it belongs to another account); choose another bucket name"
            ) from None
        if status != 404:
            raise StorageError(f"bucket {bucket.url}: cannot check it: {exc}") from None
    region = bucket.client.meta.region_name
    location = (
        {}
        if region in (None, "us-east-1")
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    bucket.call("create", "", bucket.client.create_bucket, Bucket=bucket.name, **location)
    return f"created {bucket.url}"


def _probe_write(bucket: S3Bucket) -> None:
    """Write and remove a probe object (every version of it), proving write access."""
    key = f".vault-probe-{uuid.uuid4().hex}"
    bucket.put_bytes(b"probe", key)
    versions = bucket.client.list_object_versions(Bucket=bucket.name, Prefix=bucket.prefix + key)
    for version in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        bucket.client.delete_object(
            Bucket=bucket.name, Key=version["Key"], VersionId=version["VersionId"]
        )
