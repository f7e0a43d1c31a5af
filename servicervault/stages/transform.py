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
from datetime import date
from pathlib import Path
from typing import Any

from servicervault.config import DUCKDB_MEMORY_LIMIT, PROJECT_ROOT, Tenant, vault_home
from servicervault.contracts import contract
from servicervault.errors import NotReadyError, VaultError
from servicervault.sql import literal, literals
from servicervault.stages.extract import committed_snapshot_ids
from servicervault.stages.validate import warehouse_path
from servicervault.storage import Bucket, S3Bucket

# SQLMesh writes the catalog name into every view; a fixed name keeps warehouses portable.
WAREHOUSE_CATALOG = "warehouse"
# Models built by reporting period cover the periods from this day on.
FIRST_PERIOD = date(1970, 1, 1)
# The snapshots the warehouse's models were last built from, kept beside them in the warehouse.
BUILT_SNAPSHOTS = "main.built_snapshots"
# Present while a build runs. Found by the next build, it means that one was killed or failed
# part-way: what it rebuilt is unknown, so every period is rebuilt and reported as rebuilt.
BUILD_STARTED = "main.build_started"
# What a build recomputes of the models that read their own previous rows: every row
# (``everything``), or the loans with rows in the periods from ``rebuilt_from`` on
# (``gold.loan_snapshot``) or in the snapshots landed since the last build (``new_snapshots``,
# ``silver.loan`` and ``silver.loan_checks``; ``silver.loan_last_delivery`` folds in every
# other snapshot). Written before any model runs.
BUILD_SCOPE = "main.build_scope"
# Models a new month's build runs at once: one per core of the machine it was measured on.
NEW_MONTH_TASKS = 2


class TransformError(VaultError):
    """A model or an audit failed; nothing downstream of it was updated."""


@dataclass
class TransformResult:
    build_id: str
    rows: dict[str, int]
    snapshot_ids: list[str]
    changed_models: list[str] = field(default_factory=list)
    model_seconds: dict[str, float] = field(default_factory=dict)  # per model built
    # First reporting period rebuilt: None when nothing new landed, FIRST_PERIOD for all.
    rebuilt_from: date | None = None
    # Tables of the models built by reporting period: older periods stay as they were.
    period_tables: list[str] = field(default_factory=list)
    # The warehouse tables of model versions this build's model changes replaced, removed
    # after it; why they could not be, if removing them failed (the build stands).
    removed_tables: list[str] = field(default_factory=list)
    cleanup_failure: str | None = None


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
        # Models share the connection thread-safely; a build runs one model at a time, except
        # a new month's (see _build_a_new_month_lightly).
        concurrent_tasks=NEW_MONTH_TASKS,
        # The warehouse is internal: the publication carries the contracts' column comments,
        # and SQLMesh's own after every table it builds took 0.2 s of a nightly build.
        register_comments=False,
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
        # SQLMesh re-optimizes every model's query at each build (0.2 s of a nightly one); only
        # the models that read themselves opt in (their headers), as SQLMesh infers their types.
        model_defaults=ModelDefaultsConfig(
            dialect="duckdb", start=FIRST_PERIOD.isoformat(), optimize_query=False
        ),
        variables={"snapshots_root": bucket.uri("snapshots")},
        disable_anonymized_analytics=True,
        # SQLMesh would scan every installed package on each plan (0.4 s) to record which ones
        # the models' Python imports come from; uv.lock pins them already.
        infer_python_dependencies=False,
        cache_dir=str(vault_home() / "sqlmesh" / "cache"),
        ignore_patterns=[] if with_tests else ["tests/models/test_*.yaml"],
    )
    return Context(paths=str(PROJECT_ROOT), config=config, concurrent_tasks=1)


def httpfs_extension() -> Path:
    """The httpfs extension file shipped by the duckdb-extension-httpfs package."""
    import duckdb
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).parent
    return root / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"


@dataclass
class Session:
    """SQLMesh ready to build a tenant's warehouse: a Context with the models loaded, the
    console that collects its failures, and the plan of the models' changes since the last
    build (None before the first build). A run's transform worker opens it while extract
    works, before the stage needs it."""

    context: Any
    console: Any
    changes: Any


def open_session(tenant: Tenant, execution_time: str | None = None) -> Session:
    """Load the models and plan their changes (``execution_time`` is SQLMesh's "now").

    The plan depends on the models and the warehouse's state, not on what extract lands, so
    a run's worker makes it ahead: SQLMesh took 0.5 s of Python for it at the start of every
    nightly build at 12 M. Nothing else changes the state meanwhile: the run holds the
    tenant's lock."""
    from sqlmesh.core.console import set_console

    from servicervault.sqlmesh_console import CollectingConsole

    console = CollectingConsole()
    set_console(console)
    context = make_context(tenant)
    try:
        changes = (
            context.plan("prod", auto_apply=False, **_plan_options(execution_time))
            if _has_prod(context)
            else None
        )
    except Exception as exc:
        context.close()
        raise TransformError(console.describe(exc)) from None
    return Session(context, console, changes)


def transform(tenant: Tenant, session: Session | None = None) -> TransformResult:
    """Apply model changes and recompute silver and gold from every committed snapshot.

    The build id hashes every committed snapshot (of every table: an attributes-only
    correction is a new build too) and the versions of the models that read them,
    so a rerun over the same inputs and code yields the same id, which is what lets
    publish and drop recognise work already done. ``session``, opened ahead of time, is used
    and closed; without one the build opens its own.
    """
    try:
        snapshot_ids = committed_snapshot_ids(tenant)
        if not snapshot_ids:
            bucket = Bucket.for_tenant(tenant)
            raise NotReadyError(
                f"tenant {tenant.id!r} has no committed snapshots in {bucket.url}/snapshots/; "
                "run `vault extract` first (is there a tape under the inbound prefix?)"
            )
        session = session or open_session(tenant)
        context, console = session.context, session.console
        plan, rebuilt_from = _build(session, snapshot_ids)
        removed, cleanup_failure = _remove_replaced_versions(session)
        tables = sorted(_table(m) for m in context.models.values())
        period_tables = sorted(
            _table(m) for m in context.models.values() if m.kind.is_incremental_by_time_range
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
        if session:
            session.context.close()  # checkpoints the warehouse, releases it for validation
    build_id = hashlib.sha256(json.dumps([snapshot_ids, versions]).encode()).hexdigest()[:16]
    changed = sorted(s.name for s in plan.context_diff.new_snapshots.values())
    seconds = {name: round(t, 2) for name, t in console.seconds.items()}
    return TransformResult(
        build_id,
        rows,
        snapshot_ids,
        changed,
        seconds,
        rebuilt_from,
        period_tables,
        removed,
        cleanup_failure,
    )


def _table(model: Any) -> str:
    return f"{model.fully_qualified_table.db}.{model.fully_qualified_table.name}"


def _build(
    session: Session, snapshot_ids: list[str], execution_time: str | None = None
) -> tuple[Any, date | None]:
    """Apply model changes, then rebuild what the snapshots landed since the last build touch.

    Two steps, as SQLMesh cannot restate models in the plan that deploys new versions of
    them: the first builds new or edited models, the second restates bronze from the first
    period the new snapshots touch, so the models built by period recompute those periods
    and the rest rebuild whole. Without model changes only the second runs: on a new day the
    first would build every model for the day's interval and the restatement would then
    build them again. The first step's plan is the session's (see open_session);
    ``execution_time`` is SQLMesh's "now". Returns the plan and the first period rebuilt (None
    when nothing new landed). A build that finds the one before it unfinished (killed, or
    failed part-way) rebuilds every period.
    """
    context, console = session.context, session.console
    options = _plan_options(execution_time)
    try:
        built = _has_prod(context)
        unfinished = context.engine_adapter.table_exists(BUILD_STARTED)
        new = _new_snapshots(context, snapshot_ids) if built and not unfinished else None
        first_new = _check_periods(context, snapshot_ids if new is None else new, built)
        context.engine_adapter.execute(
            f"CREATE TABLE IF NOT EXISTS {BUILD_STARTED} AS SELECT now() AS started_at"
        )
        # New or edited models build every row, and silver.loan_last_delivery every delivery
        # but the new ones, which the restatement below then checks against it.
        _set_scope(context, FIRST_PERIOD, new or [])
        if not built:
            plan = context.plan("prod", auto_apply=True, **options)
            rebuilt_from: date | None = FIRST_PERIOD
        else:
            plan = session.changes
            if plan.context_diff.has_changes:
                context.apply(plan)
            rebuilt_from = _first_changed_period(context, new, first_new)
            if rebuilt_from is not None:
                if not plan.context_diff.has_changes and _adds_periods_only(context, rebuilt_from):
                    _build_a_new_month_lightly(context)
                _set_scope(context, rebuilt_from, new or [])
                context.plan(
                    "prod",
                    restate_models=["bronze.loan_month", "bronze.loan"],
                    start=rebuilt_from.isoformat(),
                    auto_apply=True,
                    **options,
                )
            if plan.context_diff.has_changes:
                rebuilt_from = FIRST_PERIOD  # changed models were built over every period
    except TransformError:
        raise
    except Exception as exc:
        raise TransformError(console.describe(exc)) from None
    if console.failures:
        raise TransformError(console.describe())
    _record_built(context, snapshot_ids)
    return plan, rebuilt_from


def _remove_replaced_versions(session: Session) -> tuple[list[str], str | None]:
    """Drop the warehouse tables of the model versions a build's model changes replaced.

    SQLMesh keeps a replaced version's table, to bring it back without a rebuild, until its
    janitor removes it; nothing else does. Without this, each release that changes a large
    model would leave its old table in every tenant's warehouse for good (a 12 M home through
    five releases kept 2.4 GiB of tables, 0.6 GiB of them current; removing the rest took
    3.4 s). DuckDB reuses the freed blocks for later writes; its file does not shrink.

    Only a build that deployed model changes replaces versions, so only such a build runs the
    janitor, whose check alone takes 0.1-0.25 s, which a nightly month does not pay. Going
    back to an earlier release rebuilds the models it changed. A failure leaves the build as
    it is and is returned; the next release's build removes what this one left.
    """
    changes = session.changes
    if changes is None or not changes.context_diff.has_changes:
        return [], None
    context = session.context
    before, failure = _physical_tables(context), None
    try:
        context.run_janitor(ignore_ttl=True)
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
    return sorted(before - _physical_tables(context)), failure


def _physical_tables(context: Any) -> set[str]:
    """The tables and views SQLMesh keeps its model versions in (its ``sqlmesh__`` schemas)."""
    rows = context.engine_adapter.fetchall(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE starts_with(table_schema, 'sqlmesh__')"
    )
    return {name for (name,) in rows}


def _plan_options(execution_time: str | None) -> dict[str, Any]:
    return {"no_prompts": True, "skip_tests": True, "execution_time": execution_time}


def _new_snapshots(context: Any, snapshot_ids: list[str]) -> list[str] | None:
    """Committed snapshots the models have not been built from; None if they must all be.

    All are new when the warehouse has no record of its last build, or when a snapshot it was
    built from is no longer committed (its rows must leave every period)."""
    adapter = context.engine_adapter
    if not adapter.table_exists(BUILT_SNAPSHOTS):
        return None
    built = {row[0] for row in adapter.fetchall(f"SELECT snapshot_id FROM {BUILT_SNAPSHOTS}")}
    if built - set(snapshot_ids):
        return None
    return [s for s in snapshot_ids if s not in built]


def _check_periods(context: Any, snapshot_ids: list[str], built: bool) -> date | None:
    """Refuse reporting periods the period-built models would silently leave out; return the
    earliest period the snapshots deliver (None when they deliver no loan-months).

    Reads the snapshots through the bronze view once the models are built, else through its
    rendered query (rendering costs SQLMesh 0.3 s, so only the first build pays it)."""
    if not snapshot_ids:
        return None
    months = (
        "bronze.loan_month"
        if built
        else f"({context.render('bronze.loan_month').sql(dialect='duckdb')})"
    )
    ids = literals(snapshot_ids)
    low, high = context.engine_adapter.fetchone(
        f"SELECT min(period), max(period) FROM {months} WHERE _snapshot_id IN ({ids})"
    )
    if low is not None and low < FIRST_PERIOD:
        raise TransformError(
            f"loan_month rows for period {low:%Y-%m} are older than the earliest period the "
            f"models cover ({FIRST_PERIOD:%Y-%m}); check the tape's reporting period field"
        )
    if high is not None and high > date.today():
        raise TransformError(
            f"loan_month rows for period {high:%Y-%m} are in the future (today is "
            f"{date.today():%Y-%m-%d}); check the tape's reporting period field"
        )
    return low


def _first_changed_period(
    context: Any, new: list[str] | None, first_new: date | None
) -> date | None:
    """The earliest reporting period whose rows the ``new`` snapshots can change.

    That is the earliest period they deliver (``first_new``), or an earlier period of a loan
    whose attributes they change (its balances and strata are computed from them). A delivery
    with neither (loan attributes alone, changing no loan with monthly rows), or ``new`` None,
    rebuilds every period. A loan new to silver.loan has no built monthly rows (an audit holds
    every loan-month to a loan), so only known loans are compared: the scan of silver.loan_month
    for their periods then usually has nothing to look for (nightly at 12 M: 0.2 s)."""
    if new is None:
        return FIRST_PERIOD
    if not new:
        return None
    ids = literals(new)
    attributes = [c.name for c in contract("silver.loan").columns]
    compared = [c for c in attributes if c not in ("loan_id", "as_of_period")]
    differs = " OR ".join(f"b.{c} IS DISTINCT FROM s.{c}" for c in compared)
    (first,) = context.engine_adapter.fetchone(
        f"""
        SELECT min(period)
        FROM silver.loan_month
        WHERE loan_id IN (
          SELECT b.loan_id
          FROM bronze.loan AS b
          JOIN silver.loan AS s ON s.loan_id = b.loan_id
          WHERE b._snapshot_id IN ({ids}) AND ({differs})
        )
        """
    )
    return min((p for p in (first_new, first) if p is not None), default=FIRST_PERIOD)


def _adds_periods_only(context: Any, rebuilt_from: date) -> bool:
    """Whether every period the build recomputes comes after the latest one built (a new
    month), so it deletes no built row."""
    (latest,) = context.engine_adapter.fetchone("SELECT max(period) FROM silver.loan_month")
    return latest is not None and rebuilt_from > latest


def _build_a_new_month_lightly(context: Any) -> None:
    """A build that deletes no built row skips vacuuming and runs two models at a time.

    DuckDB's checkpoint vacuums: it merges partly filled row groups and reclaims the space of
    deleted rows. After a new month it would only merge the new rows' partly filled row groups
    with their neighbours (one row group fewer per table), which took 1.0 s of a nightly
    build's closing checkpoint at 12 M loan-months, against 0.1 s without. A build that
    restates built periods deletes their rows, so it vacuums as before.

    A new month's queries are small: one model at a time leaves a core idle while SQLMesh
    renders and records each model in Python. Two at a time (12 M, 23 alternating pairs of
    nightly runs, with Great Expectations' import lightened, see stage_worker): the transform
    0.6 s shorter, the run 0.9 s. A build of every period gains nothing from it (its queries
    use both cores) and would hold more memory, so it keeps one. SQLMesh reads the context's
    task count when it schedules each plan; it has no public setter."""
    context.engine_adapter.execute("SET max_vacuum_tasks = 0")
    context._concurrent_tasks = NEW_MONTH_TASKS


def _set_scope(context: Any, rebuilt_from: date, new_snapshots: list[str]) -> None:
    everything = "TRUE" if rebuilt_from == FIRST_PERIOD else "FALSE"
    context.engine_adapter.execute(
        f"CREATE OR REPLACE TABLE {BUILD_SCOPE} AS SELECT {everything} AS everything, "
        f"DATE {literal(rebuilt_from.isoformat())} AS rebuilt_from, "
        f"[{literals(new_snapshots)}]::VARCHAR[] AS new_snapshots"
    )


def _record_built(context: Any, snapshot_ids: list[str]) -> None:
    values = ", ".join(f"({literal(s)})" for s in snapshot_ids)
    context.engine_adapter.execute(
        f"CREATE OR REPLACE TABLE {BUILT_SNAPSHOTS} AS "
        f"SELECT * FROM (VALUES {values}) AS t(snapshot_id)"
    )
    context.engine_adapter.execute(f"DROP TABLE {BUILD_STARTED}")


def _has_prod(context: Any) -> bool:
    return context.state_reader.get_environment("prod") is not None
