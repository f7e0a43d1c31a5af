"""Reading drops back: presigned links for servicers, and verification against a manifest.

``verify`` re-reads a drop from any location (``file://`` or ``s3://``) and checks every
file the manifest lists (bytes, SHA-256, and for Parquet the row count and schema), and
that the folder holds nothing the manifest does not list. Any difference is reported; a
servicer can run the same check on what they received.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from servicervault.config import Tenant
from servicervault.errors import VaultError
from servicervault.stages.drop import DROPS_PREFIX, latest_drop_manifest
from servicervault.storage import Bucket, S3Bucket, open_bucket, sha256_file


class DropMismatch(VaultError):
    """The drop differs from its manifest; the message lists every difference."""


@dataclass
class VerifiedDrop:
    drop_id: str
    files: int
    rows: int


def latest_drop_id(bucket: Bucket) -> str:
    manifest = latest_drop_manifest(bucket)
    if manifest is None:
        raise VaultError(f"bucket {bucket.url} has no drops yet; run `vault drop`")
    return manifest["drop_id"]


def presign(tenant: Tenant, drop_id: str, seconds: int) -> list[tuple[str, str]]:
    """Time-limited download links for every file of a drop and its manifest."""
    bucket = Bucket.for_tenant(tenant)
    if not isinstance(bucket, S3Bucket):
        raise VaultError(
            f"presigned links need an s3:// bucket; tenant {tenant.id!r} uses {bucket.url}"
        )
    prefix = f"{DROPS_PREFIX}{drop_id}/"
    manifest = json.loads(bucket.read_bytes(f"{prefix}manifest.json"))
    names = [f["file"] for f in _entries(manifest)] + ["manifest.json"]
    return [(name, bucket.presign(prefix + name, seconds)) for name in names]


def verify(uri: str, tenant: Tenant | None = None) -> VerifiedDrop:
    """Check a drop folder (``…/drops/<id>/``) or its ``manifest.json`` against the manifest."""
    folder = uri.removesuffix("manifest.json").rstrip("/")
    root, _, rest = folder.partition("/drops/")
    if not rest or "/" in rest:
        raise VaultError(f"{uri}: expected a drop folder like <bucket>/drops/<drop_id>/")
    bucket = open_bucket(root, tenant)
    prefix = f"{DROPS_PREFIX}{rest}/"
    try:
        manifest = json.loads(bucket.read_bytes(f"{prefix}manifest.json"))
    except json.JSONDecodeError as exc:
        raise DropMismatch(f"{uri}: manifest.json is not valid JSON: {exc}") from None
    problems: list[str] = []
    listed = {f["file"] for f in _entries(manifest)}
    present = {k.removeprefix(prefix) for k in bucket.list(prefix)} - {"manifest.json"}
    problems += [f"{name}: listed in the manifest but missing" for name in sorted(listed - present)]
    problems += [f"{name}: present but not in the manifest" for name in sorted(present - listed)]
    rows = 0
    with tempfile.TemporaryDirectory(prefix="vault-verify-") as tmp:
        for entry in _entries(manifest):
            if entry["file"] not in present:
                continue
            path = bucket.fetch(prefix + entry["file"], Path(tmp))
            problems += _check_file(path, entry)
            rows += entry.get("rows") or 0
    if problems:
        raise DropMismatch(
            f"drop {manifest.get('drop_id', rest)} does not match its manifest:\n  "
            + "\n  ".join(problems)
        )
    return VerifiedDrop(drop_id=manifest["drop_id"], files=len(listed), rows=rows)


def _entries(manifest: dict) -> list[dict]:
    """Data files (with rows and schema) and documents (bytes and SHA-256 only)."""
    return manifest["files"] + manifest.get("documents", [])


def _check_file(path: Path, entry: dict) -> list[str]:
    name = entry["file"]
    out = []
    if path.stat().st_size != entry["bytes"]:
        out.append(f"{name}: {path.stat().st_size:,} bytes, manifest says {entry['bytes']:,}")
    if sha256_file(path) != entry["sha256"]:
        out.append(f"{name}: SHA-256 differs from the manifest")
    if "rows" not in entry:
        return out
    try:
        meta = pq.read_metadata(path)
    except Exception as exc:
        return [*out, f"{name}: not readable as Parquet ({exc})"]
    if meta.num_rows != entry["rows"]:
        out.append(f"{name}: {meta.num_rows:,} rows, manifest says {entry['rows']:,}")
    schema = [{"name": f.name, "type": str(f.type)} for f in meta.schema.to_arrow_schema()]
    if schema != entry["schema"]:
        out.append(f"{name}: schema differs from the manifest")
    return out
