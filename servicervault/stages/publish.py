"""Publish: the read-only analytics database analysts ``ATTACH … (READ_ONLY)``.

The warehouse holds SQLMesh's versioned physical tables behind views; analysts get plain
tables instead, copied into a new file that replaces the old one atomically, so a reader
sees either the previous publication or the new one, never half of one. Column comments
come from the contracts, so ``DESCRIBE`` answers what a column means.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from servicervault.config import DUCKDB_MEMORY_LIMIT, Tenant
from servicervault.contracts import LOAN_MONTHS, PERIOD, all_contracts
from servicervault.sql import literal, literals
from servicervault.stages.transform import WAREHOUSE_CATALOG
from servicervault.stages.validate import warehouse_path

PUBLISHED_SCHEMAS = ("silver", "gold")


def analytics_path(tenant: Tenant) -> Path:
    return tenant.home / "analytics.duckdb"


def published_build(tenant: Tenant) -> str | None:
    """The build id of the current publication; None when nothing is published."""
    path = analytics_path(tenant)
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT build_id FROM main.publication").fetchone()[0]
    finally:
        con.close()


@dataclass(frozen=True)
class Publication:
    """A complete analytics database for ``build_id``, written beside the published one and not
    yet in its place."""

    path: Path
    build_id: str
    keep_before: date | None
    rows: dict[str, int]  # per table


def publish(
    tenant: Tenant, build_id: str, snapshot_ids: list[str], keep_before: date | None = None
) -> dict[str, int]:
    """Copy every contracted silver and gold table of the warehouse; return rows per table."""
    return commit(tenant, prepare(tenant, build_id, snapshot_ids, keep_before))


def prepare(
    tenant: Tenant,
    build_id: str,
    snapshot_ids: list[str],
    keep_before: date | None = None,
    threads: int | None = None,
) -> Publication:
    """Write the new analytics database beside the published one; :func:`commit` puts it in
    place, :func:`discard` removes it. Nothing a reader sees changes until the commit.

    Only tables with a contract are published: those are the ones validation checked and
    the data dictionary defines. Intermediate models stay in the warehouse.

    ``keep_before`` says that no build since the current publication changed the periods
    before it, so the new file starts as a copy of the published one and only the later
    periods of ``silver.loan_month`` (the one large table, built by period) are copied again;
    every other table is small and is copied whole. ``date.max`` keeps every period; None
    copies everything. ``threads`` caps DuckDB's threads (default: one per core).
    """
    target = analytics_path(tenant)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    if keep_before is not None and target.exists():
        shutil.copyfile(target, tmp)
    rows: dict[str, int] = {}
    config: dict[str, str | int] = {"memory_limit": DUCKDB_MEMORY_LIMIT}
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(str(tmp), config=config)
    try:
        # The alias must be SQLMesh's catalog name: its views refer to it.
        con.execute(
            f"ATTACH {literal(str(warehouse_path(tenant)))} AS {WAREHOUSE_CATALOG} (READ_ONLY)"
        )
        kept = _drop_all_but_kept(con, keep_before)
        for schema in PUBLISHED_SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in sorted(all_contracts()):
            schema, name = table.split(".")
            source = f'{WAREHOUSE_CATALOG}.{schema}."{name}"'
            if table == kept:
                # Values as literals: binding any parameter makes DuckDB import pandas (0.3 s).
                newer = f"{PERIOD} >= DATE {literal(keep_before)}"
                con.execute(f"DELETE FROM {table} WHERE {newer}")
                con.execute(f"INSERT INTO {table} SELECT * FROM {source} WHERE {newer}")
            else:
                con.execute(f'CREATE TABLE {schema}."{name}" AS SELECT * FROM {source}')
            rows[table] = con.execute(f'SELECT count(*) FROM {schema}."{name}"').fetchone()[0]
        _comment(con)
        con.execute(
            f"CREATE TABLE main.publication AS SELECT {literal(build_id)} AS build_id, "
            f"{literal(tenant.id)} AS tenant, [{literals(snapshot_ids)}]::VARCHAR[] "
            "AS snapshot_ids, current_timestamp AS published_at"
        )
        con.execute(f"DETACH {WAREHOUSE_CATALOG}")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    return Publication(tmp, build_id, keep_before, rows)


def commit(tenant: Tenant, publication: Publication) -> dict[str, int]:
    """Put a prepared publication in place, atomically; return its rows per table."""
    os.replace(publication.path, analytics_path(tenant))
    return publication.rows


def discard(publication: Publication) -> None:
    publication.path.unlink(missing_ok=True)


def _drop_all_but_kept(con: duckdb.DuckDBPyConnection, keep_before: date | None) -> str | None:
    """Empty a copied publication except LOAN_MONTHS when its columns are still the warehouse's.

    Returns LOAN_MONTHS when its published rows are kept, else None (nothing copied, a model
    change, or a table that no longer matches)."""
    published = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = current_database()"
    ).fetchall()
    kept = None
    if keep_before is not None and (LOAN_MONTHS,) in published:
        ours, theirs = (
            [row[:2] for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]
            for table in (LOAN_MONTHS, f"{WAREHOUSE_CATALOG}.{LOAN_MONTHS}")
        )
        kept = LOAN_MONTHS if ours == theirs else None
    for (table,) in published:
        if table != kept:
            con.execute(f"DROP TABLE {table}")
    return kept


def _comment(con: duckdb.DuckDBPyConnection) -> None:
    for table, c in all_contracts().items():
        con.execute(f"COMMENT ON TABLE {table} IS {literal(c.description)}")
        for col in c.columns:
            con.execute(f'COMMENT ON COLUMN {table}."{col.name}" IS {literal(col.description)}')
