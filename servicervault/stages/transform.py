"""Transform: the SQLMesh project in ``models/`` built into the tenant's DuckDB warehouse.

Each tenant has its own warehouse file (SQLMesh state included), and the only tenant-specific
input is the ``snapshots_root`` variable: where that tenant's committed snapshots are.
SQLMesh is imported only here; its console is silenced and its audit failures are collected
so the CLI can report them in one readable message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from servicervault.config import PROJECT_ROOT, Tenant
from servicervault.stages.validate import warehouse_path
from servicervault.storage import Bucket


class TransformError(Exception):
    """A model or an audit failed; nothing downstream of it was updated."""


@dataclass
class TransformResult:
    rows: dict[str, int]
    snapshot_ids: list[str]
    changed_models: list[str] = field(default_factory=list)


def make_context(tenant: Tenant) -> Any:
    """A SQLMesh Context for this tenant's warehouse; configured in code, no YAML."""
    os.environ.setdefault("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", "1")
    from sqlmesh import Context
    from sqlmesh.core.config import (
        Config,
        DuckDBConnectionConfig,
        GatewayConfig,
        ModelDefaultsConfig,
    )

    database = warehouse_path(tenant)
    database.parent.mkdir(parents=True, exist_ok=True)
    config = Config(
        project="servicervault",
        gateways={
            "local": GatewayConfig(connection=DuckDBConnectionConfig(database=str(database)))
        },
        default_gateway="local",
        model_defaults=ModelDefaultsConfig(dialect="duckdb"),
        variables={"snapshots_root": Bucket.for_tenant(tenant).uri("snapshots")},
        disable_anonymized_analytics=True,
    )
    return Context(paths=str(PROJECT_ROOT), config=config)


def transform(tenant: Tenant) -> TransformResult:
    """Apply model changes and recompute silver and gold from every committed snapshot."""
    from sqlmesh.core.console import set_console

    from servicervault.sqlmesh_console import CollectingConsole

    console = CollectingConsole()
    set_console(console)
    context = make_context(tenant)
    try:
        plan = context.plan(
            "prod",
            restate_models=["bronze.loan_month", "bronze.loan"] if _has_prod(context) else None,
            auto_apply=True,
            no_prompts=True,
            skip_tests=True,
        )
    except Exception as exc:
        raise TransformError(console.describe(exc)) from None
    if console.failures:
        raise TransformError(console.describe())
    rows = {
        name: int(context.fetchdf(f"SELECT count(*) AS n FROM {name}")["n"].iloc[0])
        for name in sorted(_model_names(context))
        if not name.startswith("bronze.")
    }
    snapshot_ids = sorted(
        context.fetchdf("SELECT DISTINCT _snapshot_id FROM silver.loan_month")["_snapshot_id"]
    )
    context.close()
    changed = sorted(s.name for s in plan.context_diff.new_snapshots.values())
    return TransformResult(rows=rows, snapshot_ids=snapshot_ids, changed_models=changed)


def _has_prod(context: Any) -> bool:
    return context.state_reader.get_environment("prod") is not None


def _model_names(context: Any) -> list[str]:
    return [
        m.name.replace('"', "").split(".", 1)[-1] if m.name.count(".") > 1 else m.name
        for m in context.models.values()
    ]
