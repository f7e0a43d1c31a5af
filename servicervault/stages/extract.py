"""Extract: land new tape files from a tenant's inbound prefix as an immutable snapshot.

A file is identified by its SHA-256, so a file already landed (under any name) is never
landed twice and a run with nothing new lands nothing. The snapshot's manifest is written
last, after dlt has loaded every file: until then the snapshot does not exist for readers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from pipelines.servicing_tape.tables import TABLES
from servicervault.config import Source, Tenant
from servicervault.errors import VaultError
from servicervault.ledger import new_run_id
from servicervault.storage import Bucket, sha256_file

if TYPE_CHECKING:
    from pipelines.servicing_tape import TapeFile

Progress = Callable[[str], None]


class ExtractError(VaultError):
    """A tape could not be landed; nothing from this run was committed."""


@dataclass
class SourceExtract:
    source: str
    snapshot_id: str | None = None
    load_id: str | None = None
    manifest_key: str | None = None
    files: list[dict] = field(default_factory=list)
    already_landed: list[str] = field(default_factory=list)
    rows_landed: int = 0
    rows_quarantined: int = 0


def snapshot_prefix(source: str, snapshot_id: str) -> str:
    return f"snapshots/{source}/{snapshot_id}/"


def read_manifests(bucket: Bucket, source: str) -> list[dict]:
    """Manifests of every committed snapshot of ``source``, oldest first."""
    keys = [k for k in bucket.list(f"snapshots/{source}/") if k.endswith("/manifest.json")]
    return [json.loads(bucket.read_bytes(k)) for k in keys]


def extract(tenant: Tenant, progress: Progress | None = None) -> list[SourceExtract]:
    """Land new files of every source of the tenant; one snapshot per source with new files."""
    return [extract_source(tenant, source, progress) for source in tenant.sources]


def extract_source(tenant: Tenant, source: Source, progress: Progress | None) -> SourceExtract:
    from pipelines.servicing_tape import TapeFile

    say = progress or (lambda _msg: None)
    bucket = Bucket.for_tenant(tenant)
    result = SourceExtract(source=source.name)
    landed = {f["sha256"] for m in read_manifests(bucket, source.name) for f in m["files"]}
    new: list[TapeFile] = []
    for key in bucket.list(source.inbound):
        if key.rsplit("/", 1)[-1].startswith("."):
            continue
        path = bucket.local_path(key)
        digest = sha256_file(path)
        if digest in landed:
            result.already_landed.append(key)
            continue
        landed.add(digest)
        new.append(TapeFile(path=path, key=key, sha256=digest, bytes=path.stat().st_size))
    if not new:
        say(
            f"{source.name}: no new files under {source.inbound} "
            f"({len(result.already_landed)} already landed)"
        )
        return result

    result.snapshot_id = new_run_id()
    say(f"{source.name}: landing {len(new)} new file(s) as snapshot {result.snapshot_id}")
    result.load_id, staged = _load(tenant, source, bucket, new, result.snapshot_id, say)
    result.files = [
        {
            "key": t.key,
            "sha256": t.sha256,
            "bytes": t.bytes,
            "rows_in": t.rows_in,
            "rows_landed": t.rows_landed,
            "rows_quarantined": t.rows_quarantined,
        }
        for t in new
    ]
    result.rows_landed = sum(t.rows_landed for t in new)
    result.rows_quarantined = sum(t.rows_quarantined for t in new)
    result.manifest_key = _commit(tenant, source, bucket, result, staged)
    return result


def _load(
    tenant: Tenant,
    source: Source,
    bucket: Bucket,
    files: list[TapeFile],
    snapshot_id: str,
    say: Progress,
) -> tuple[str, dict[str, list[Path]]]:
    """Run the tenant's dlt pipeline into the bucket's staging area.

    dlt writes straight into place, so a killed load can leave a truncated file; landing in
    ``staging/`` and copying atomically into ``snapshots/`` keeps every snapshot file whole.
    Returns the load id and the staged Parquet files per table.
    """
    import dlt
    from dlt.pipeline.exceptions import PipelineStepFailed

    from pipelines.servicing_tape import servicing_tape
    from pipelines.servicing_tape.parser import TapeError

    pipeline = dlt.pipeline(
        pipeline_name=f"{tenant.id}__{source.name}",
        pipelines_dir=str(tenant.home / "dlt"),
        destination=dlt.destinations.filesystem(bucket_url=bucket.local_path("staging").as_uri()),
        dataset_name=source.name,
    )
    # A killed earlier run may have left a pending package; its rows carry a snapshot id that
    # never got a manifest. Abort it: otherwise dlt would load it instead of this run's data.
    if pipeline.has_pending_data:
        say(f"{source.name}: discarding an unfinished load left by an interrupted run")
        pipeline.abort_packages()

    def on_file(tape: TapeFile) -> None:
        say(
            f"  {tape.key}: {tape.rows_in:,} rows, {tape.rows_landed:,} landed, "
            f"{tape.rows_quarantined:,} quarantined"
        )

    try:
        info = pipeline.run(
            servicing_tape(files, source.layout, snapshot_id, on_file),
            loader_file_format="parquet",
        )
    except PipelineStepFailed as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, TapeError):
            cause = cause.__cause__ or cause.__context__
        reason = str(cause) if cause else f"{exc.step} failed: {exc.exception}"
        raise ExtractError(f"{source.name}: nothing landed: {reason}") from None
    info.raise_on_failed_jobs()
    load_id = info.loads_ids[-1]
    staged: dict[str, list[Path]] = {}
    for job in info.metrics[load_id][0]["job_metrics"].values():
        if job.remote_url and job.table_name in TABLES:
            staged.setdefault(job.table_name, []).append(
                Path(job.remote_url.removeprefix("file://"))
            )
    return load_id, staged


def _commit(
    tenant: Tenant,
    source: Source,
    bucket: Bucket,
    result: SourceExtract,
    staged: dict[str, list[Path]],
) -> str:
    """Copy the staged files into the snapshot (atomic, write-once), then write its manifest."""
    prefix = snapshot_prefix(source.name, result.snapshot_id)
    tables: dict[str, dict] = {}
    for table in TABLES:
        files, schema = [], {}
        for path in staged.get(table, []):
            key = f"{prefix}{table}/{path.name}"
            bucket.put_file(path, key)
            meta = pq.read_metadata(path)
            schema = {f.name: str(f.type) for f in meta.schema.to_arrow_schema()}
            files.append({"key": key, "rows": meta.num_rows, "sha256": sha256_file(path)})
            path.unlink()
        tables[table] = {"files": files, "rows": sum(f["rows"] for f in files), "schema": schema}
    fingerprint = json.dumps({t: v["schema"] for t, v in tables.items()}, sort_keys=True)
    manifest = {
        "snapshot_id": result.snapshot_id,
        "tenant": tenant.id,
        "source": source.name,
        "layout": source.layout,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dlt_load_id": result.load_id,
        "schema_fingerprint": hashlib.sha256(fingerprint.encode()).hexdigest(),
        "files": result.files,
        "tables": tables,
        "rows_landed": result.rows_landed,
        "rows_quarantined": result.rows_quarantined,
    }
    key = f"{prefix}manifest.json"
    bucket.put_bytes(json.dumps(manifest, indent=2).encode(), key)
    return key
