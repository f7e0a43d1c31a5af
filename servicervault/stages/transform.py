"""Transform: the SQLMesh project in ``models/`` built into the tenant's DuckDB warehouse.

Each tenant has its own warehouse file (SQLMesh state included), and the only tenant-specific
input is the ``snapshots_root`` variable: where that tenant's committed snapshots are.
SQLMesh is imported only here; its console is silenced and its audit failures are collected
so the CLI can report them in one readable message.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servicervault.config import DUCKDB_MEMORY_LIMIT, PROJECT_ROOT, Tenant, vault_home
from servicervault.errors import NotReadyError, VaultError
from servicervault.stages.extract import committed_snapshot_ids
from servicervault.stages.validate import warehouse_path
from servicervault.storage import Bucket, S3Bucket

# SQLMesh writes the catalog name into every view; a fixed name keeps warehouses portable.
WAREHOUSE_CATALOG = "warehouse"


class TransformError(VaultError):
    """A model or an audit failed; nothing downstream of it was updated."""


@dataclass
class TransformResult:
    build_id: str
    rows: dict[str, int]
    snapshot_ids: list[str]
    changed_models: list[str] = field(default_factory=list)
    model_seconds: dict[str, float] = field(default_factory=dict)  # per model built


def make_context(tenant: Tenant, with_tests: bool = False) -> Any:
    """A SQLMesh Context for this tenant's warehouse; configured in code, no YAML.

    A build does not load the model unit tests (``tests/models/``): parsing their YAML took
    1.5 s of every run, and ``make test`` runs them (``with_tests=True``)."""
    os.environ.setdefault("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", "1")
    os.environ.setdefault("SQLMESH_HOME", str(vault_home() / "sqlmesh"))
    from sqlmesh import Context
    from sqlmesh.core.config import (
        Config,
        DuckDBConnectionConfig,
        GatewayConfig,
        ModelDefaultsConfig,
    )

    database = warehouse_path(tenant)
    database.parent.mkdir(parents=True, exist_ok=True)
    bucket = Bucket.for_tenant(tenant)
    s3 = isinstance(bucket, S3Bucket)
    connection = DuckDBConnectionConfig(
        catalogs={WAREHOUSE_CATALOG: str(database)},
        # httpfs comes from its PyPI package (a local file), and nothing may be downloaded.
        extensions=[{"name": f"'{httpfs_extension()}'"}] if s3 else [],
        secrets=[bucket.duckdb_secret()] if s3 else [],
        connector_config={
            "autoinstall_known_extensions": "false",
            "memory_limit": DUCKDB_MEMORY_LIMIT,
            "temp_directory": str(tenant.home / "work" / "transform-spill"),
        },
    )
    config = Config(
        project="servicervault",
        gateways={"local": GatewayConfig(connection=connection)},
        default_gateway="local",
        model_defaults=ModelDefaultsConfig(dialect="duckdb"),
        variables={"snapshots_root": bucket.uri("snapshots")},
        disable_anonymized_analytics=True,
        cache_dir=str(vault_home() / "sqlmesh" / "cache"),
        ignore_patterns=[] if with_tests else ["tests/models/test_*.yaml"],
    )
    return Context(paths=str(PROJECT_ROOT), config=config)


def httpfs_extension() -> Path:
    """The httpfs extension file shipped by the duckdb-extension-httpfs package."""
    import duckdb
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).parent
    return root / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"


def transform(tenant: Tenant) -> TransformResult:
    """Apply model changes and recompute silver and gold from every committed snapshot.

    The build id hashes every committed snapshot (of every table: an attributes-only
    correction is a new build too) and the versions of the models that read them,
    so a rerun over the same inputs and code yields the same id, which is what lets
    publish and drop recognise work already done.
    """
    snapshot_ids = committed_snapshot_ids(tenant)
    if not snapshot_ids:
        bucket = Bucket.for_tenant(tenant)
        raise NotReadyError(
            f"tenant {tenant.id!r} has no committed snapshots in {bucket.url}/snapshots/; "
            "run `vault extract` first (is there a tape under the inbound prefix?)"
        )
    from sqlmesh.core.console import set_console

    from servicervault.sqlmesh_console import CollectingConsole

    console = CollectingConsole()
    set_console(console)
    context = make_context(tenant)
    try:
        plan = _build(context, console)
        tables = sorted(
            f"{m.fully_qualified_table.db}.{m.fully_qualified_table.name}"
            for m in context.models.values()
        )
        rows = {
            t: int(context.fetchdf(f"SELECT count(*) AS n FROM {t}")["n"].iloc[0])
            for t in tables
            if not t.startswith("bronze.")
        }
        versions = sorted(
            f"{s.name}:{s.fingerprint.to_identifier()}"
            for s in context.state_reader.get_environment("prod").snapshots
        )
    finally:
        context.close()  # checkpoints the warehouse and releases its lock for validation
    build_id = hashlib.sha256(json.dumps([snapshot_ids, versions]).encode()).hexdigest()[:16]
    changed = sorted(s.name for s in plan.context_diff.new_snapshots.values())
    seconds = {name: round(t, 2) for name, t in console.seconds.items()}
    return TransformResult(build_id, rows, snapshot_ids, changed, seconds)


def _build(context: Any, console: Any, execution_time: str | None = None) -> Any:
    """Apply model changes, then restate bronze so every model re-reads the snapshots.

    Two steps, as SQLMesh cannot restate models in the plan that deploys new versions of
    them: the first builds new or edited models, the second makes every model downstream of
    bronze re-read the snapshots landed since the last run. Without model changes only the
    second runs: on a new day the first would rebuild every model for the day's interval and
    the restatement would then build them all again. ``execution_time`` is SQLMesh's "now".
    """
    options = {"no_prompts": True, "skip_tests": True, "execution_time": execution_time}
    try:
        if not _has_prod(context):
            plan = context.plan("prod", auto_apply=True, **options)
        else:
            plan = context.plan("prod", auto_apply=False, **options)
            if plan.context_diff.has_changes:
                context.apply(plan)
            context.plan(
                "prod",
                restate_models=["bronze.loan_month", "bronze.loan"],
                auto_apply=True,
                **options,
            )
    except Exception as exc:
        raise TransformError(console.describe(exc)) from None
    if console.failures:
        raise TransformError(console.describe())
    return plan


def _has_prod(context: Any) -> bool:
    return context.state_reader.get_environment("prod") is not None
