"""Publish: the read-only analytics database analysts ``ATTACH … (READ_ONLY)``.

The warehouse holds SQLMesh's versioned physical tables behind views; analysts get plain
tables instead, copied into a new file that replaces the old one atomically, so a reader
sees either the previous publication or the new one, never half of one. Column comments
come from the contracts, so ``DESCRIBE`` answers what a column means.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from servicervault.config import DUCKDB_MEMORY_LIMIT, Tenant
from servicervault.contracts import all_contracts
from servicervault.sql import literal
from servicervault.stages.transform import WAREHOUSE_CATALOG
from servicervault.stages.validate import warehouse_path

PUBLISHED_SCHEMAS = ("silver", "gold")


def analytics_path(tenant: Tenant) -> Path:
    return tenant.home / "analytics.duckdb"


def publish(tenant: Tenant, build_id: str, snapshot_ids: list[str]) -> dict[str, int]:
    """Copy every contracted silver and gold table of the warehouse; return rows per table.

    Only tables with a contract are published: those are the ones validation checked and
    the data dictionary defines. Intermediate models stay in the warehouse.
    """
    target = analytics_path(tenant)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    rows: dict[str, int] = {}
    con = duckdb.connect(str(tmp), config={"memory_limit": DUCKDB_MEMORY_LIMIT})
    try:
        # The alias must be SQLMesh's catalog name: its views refer to it.
        con.execute(
            f"ATTACH {literal(str(warehouse_path(tenant)))} AS {WAREHOUSE_CATALOG} (READ_ONLY)"
        )
        tables = [tuple(t.split(".")) for t in sorted(all_contracts())]
        for schema in PUBLISHED_SCHEMAS:
            con.execute(f"CREATE SCHEMA {schema}")
        for schema, name in tables:
            source = f'{WAREHOUSE_CATALOG}.{schema}."{name}"'
            con.execute(f'CREATE TABLE {schema}."{name}" AS SELECT * FROM {source}')
            rows[f"{schema}.{name}"] = con.execute(
                f'SELECT count(*) FROM {schema}."{name}"'
            ).fetchone()[0]
        _comment(con)
        con.execute(
            "CREATE TABLE main.publication AS SELECT ? AS build_id, ? AS tenant, "
            "?::VARCHAR[] AS snapshot_ids, current_timestamp AS published_at",
            [build_id, tenant.id, snapshot_ids],
        )
        con.execute(f"DETACH {WAREHOUSE_CATALOG}")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, target)
    return rows


def _comment(con: duckdb.DuckDBPyConnection) -> None:
    for table, c in all_contracts().items():
        con.execute(f"COMMENT ON TABLE {table} IS {literal(c.description)}")
        for col in c.columns:
            con.execute(f'COMMENT ON COLUMN {table}."{col.name}" IS {literal(col.description)}')
