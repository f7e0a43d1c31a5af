"""Drop: the gold tables as Parquet in the tenant's bucket, with a verifiable manifest.

Each drop is its own folder ``drops/<drop_id>/``. Every file is listed in ``manifest.json``
with its rows, SHA-256 and schema, plus the snapshot ids the data came from. The drop's data
dictionary (``data_dictionary.md``, a definition for every column of every dropped table) is
listed under ``documents`` with its bytes and SHA-256, as it has no rows or schema. The
manifest is written after every file, so a drop without one is incomplete and must be ignored.
A drop is made from the published database, so servicers receive exactly what analysts see.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from servicervault.config import Tenant
from servicervault.dictionary import data_dictionary
from servicervault.errors import NotReadyError
from servicervault.ledger import new_run_id
from servicervault.sql import literal
from servicervault.stages.publish import analytics_path
from servicervault.storage import Bucket, sha256_file

DROPS_PREFIX = "drops/"
DICTIONARY_FILE = "data_dictionary.md"


@dataclass
class DropResult:
    drop_id: str
    manifest_key: str
    files: list[dict]
    created: bool  # False when the published build had already been dropped


def latest_drop_manifest(bucket: Bucket) -> dict | None:
    keys = [k for k in bucket.list(DROPS_PREFIX) if k.endswith("/manifest.json")]
    return json.loads(bucket.read_bytes(keys[-1])) if keys else None


def drop(tenant: Tenant) -> DropResult:
    """Write the published gold tables as a new drop, unless this build was already dropped."""
    path = analytics_path(tenant)
    if not path.exists():
        raise NotReadyError(
            f"tenant {tenant.id!r} has nothing published yet ({path}); run `vault publish` first"
        )
    bucket = Bucket.for_tenant(tenant)
    con = duckdb.connect(str(path), read_only=True)
    try:
        build_id, snapshot_ids = con.execute(
            "SELECT build_id, snapshot_ids FROM main.publication"
        ).fetchone()
        previous = latest_drop_manifest(bucket)
        if previous and previous["build_id"] == build_id:
            key = f"{DROPS_PREFIX}{previous['drop_id']}/manifest.json"
            return DropResult(previous["drop_id"], key, previous["files"], created=False)
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'gold' ORDER BY 1"
            ).fetchall()
        ]
        drop_id = new_run_id()
        files = []
        with tempfile.TemporaryDirectory(prefix="vault-drop-") as tmp:
            for table in tables:
                local = Path(tmp) / f"{table}.parquet"
                con.execute(
                    f'COPY gold."{table}" TO {literal(local)} (FORMAT parquet, COMPRESSION zstd)'
                )
                key = f"{DROPS_PREFIX}{drop_id}/{table}.parquet"
                bucket.put_file(local, key)
                files.append(_describe(local, table, key))
            documents = [_write_dictionary(bucket, Path(tmp), drop_id, tenant.id, build_id, tables)]
        manifest = {
            "drop_id": drop_id,
            "tenant": tenant.id,
            "build_id": build_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "snapshot_ids": snapshot_ids,
            "files": files,
            "documents": documents,
        }
        manifest_key = f"{DROPS_PREFIX}{drop_id}/manifest.json"
        bucket.put_bytes(json.dumps(manifest, indent=2).encode(), manifest_key)
        return DropResult(drop_id, manifest_key, files, created=True)
    finally:
        con.close()


def _write_dictionary(
    bucket: Bucket, tmp: Path, drop_id: str, tenant_id: str, build_id: str, tables: list[str]
) -> dict:
    """Put the data dictionary of exactly the dropped tables next to them; its manifest entry."""
    preface = (
        f"This is drop `{drop_id}` of tenant `{tenant_id}` (build `{build_id}`). Each table "
        "below is a Parquet file beside this one (`gold.portfolio_monthly` is "
        "`portfolio_monthly.parquet`), listed in `manifest.json` with its rows, SHA-256 and "
        "schema."
    )
    local = tmp / DICTIONARY_FILE
    local.write_text(data_dictionary([f"gold.{t}" for t in tables], preface), encoding="utf-8")
    key = f"{DROPS_PREFIX}{drop_id}/{DICTIONARY_FILE}"
    bucket.put_file(local, key)
    return {
        "file": DICTIONARY_FILE,
        "media_type": "text/markdown",
        "bytes": local.stat().st_size,
        "sha256": sha256_file(local),
    }


def _describe(local: Path, table: str, key: str) -> dict:
    meta = pq.read_metadata(local)
    return {
        "table": f"gold.{table}",
        "file": key.rsplit("/", 1)[-1],
        "rows": meta.num_rows,
        "bytes": local.stat().st_size,
        "sha256": sha256_file(local),
        "schema": [{"name": f.name, "type": str(f.type)} for f in meta.schema.to_arrow_schema()],
    }
