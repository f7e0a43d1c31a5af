"""Publish: the analytics database analysts read, described by the contracts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from servicervault.contracts import all_contracts
from servicervault.stages.extract import extract
from servicervault.stages.publish import analytics_path, publish
from servicervault.stages.transform import transform
from servicervault.stages.validate import warehouse_path
from tests.conftest import Deliver, MakeTenant

pytestmark = pytest.mark.slow


def test_every_published_table_and_column_carries_its_contract_definition(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path]
) -> None:
    """``DESCRIBE`` in the analytics database says what a column means (PRODUCT.md). The
    comments come from the contracts at publication: the warehouse behind it has none, as
    SQLMesh's own took 0.2 s of every nightly build."""
    tenant = make_tenant()
    deliver(tenant, small_tapes[:3])
    extract(tenant)
    built = transform(tenant)
    publish(tenant, built.build_id, built.snapshot_ids)

    con = duckdb.connect(str(analytics_path(tenant)), read_only=True)
    tables = dict(
        con.execute(
            "SELECT schema_name || '.' || table_name, comment FROM duckdb_tables()"
        ).fetchall()
    )
    columns = {
        (table, column): comment
        for table, column, comment in con.execute(
            "SELECT schema_name || '.' || table_name, column_name, comment FROM duckdb_columns()"
        ).fetchall()
    }
    con.close()
    for table, c in all_contracts().items():
        assert tables[table] == c.description, table
        for col in c.columns:
            assert col.description, (table, col.name)
            assert columns[(table, col.name)] == col.description, (table, col.name)

    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    warehouse_comments = con.execute(
        "SELECT count(*) FILTER (WHERE comment IS NOT NULL), count(*) FROM duckdb_columns() "
        "WHERE schema_name LIKE 'sqlmesh__%'"
    ).fetchone()
    con.close()
    assert warehouse_comments[1] > 0
    assert warehouse_comments[0] == 0
