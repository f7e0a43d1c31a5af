"""Transform: models read committed snapshots only and produce the contracted tables."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from servicervault.contracts import all_contracts
from servicervault.errors import NotReadyError
from servicervault.stages.extract import extract
from servicervault.stages.transform import transform
from servicervault.stages.validate import LINEAGE, warehouse_path
from servicervault.storage import Bucket
from tests.conftest import Deliver, MakeTenant

pytestmark = pytest.mark.slow


def test_transform_needs_a_committed_snapshot(make_tenant: MakeTenant) -> None:
    with pytest.raises(NotReadyError, match="no committed snapshots"):
        transform(make_tenant())


def test_models_produce_the_contracts_and_ignore_uncommitted_files(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path]
) -> None:
    tenant = make_tenant()
    deliver(tenant, small_tapes[:6])
    [landed] = extract(tenant)
    first = transform(tenant)
    assert first.snapshot_ids == [landed.snapshot_id]

    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    for table, c in all_contracts().items():
        described = con.execute(f"DESCRIBE {table}").fetchall()
        actual = {name: dtype for name, dtype, *_ in described}
        expected = {col.name: col.type for col in c.columns}
        if c.schema == "silver":
            assert set(actual) - set(expected) == set(LINEAGE), table
        assert {n: actual[n] for n in expected} == expected, table
    con.close()

    # Files of a snapshot whose manifest was never written (an interrupted extract) are
    # ignored, even though its id sorts after every committed one and its UPBs differ.
    bucket = Bucket.for_tenant(tenant)
    orphan = bucket.local_path("snapshots/servicing_tape/29991231T000000000000Z/loan_month")
    orphan.mkdir(parents=True)
    committed = bucket.local_path(f"snapshots/servicing_tape/{landed.snapshot_id}/loan_month")
    duckdb.execute(
        f"COPY (SELECT * REPLACE ('29991231T000000000000Z' AS _snapshot_id, "
        f"current_upb + 1 AS current_upb) FROM '{committed}/*.parquet') "
        f"TO '{orphan}/orphan.parquet' (FORMAT parquet)"
    )
    again = transform(tenant)
    assert again.rows == first.rows
    assert again.snapshot_ids == [landed.snapshot_id]
    assert again.build_id == first.build_id


def test_a_redelivered_period_takes_the_latest_snapshot(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    tenant = make_tenant()
    deliver(tenant, small_tapes[:2])
    extract(tenant)
    # The servicer corrects month 2: every loan's rate is restated to 9.999.
    lines = small_tapes[1].read_text().splitlines()
    fixed = tmp_path / "sflp_correction.txt"
    fixed.write_text("\n".join(_set_field(line, 9, "9.999") for line in lines) + "\n")
    deliver(tenant, [fixed])
    [correction] = extract(tenant)
    result = transform(tenant)
    assert len(result.snapshot_ids) == 2
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    rows = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE current_rate = 9.999), "
        "count(DISTINCT _snapshot_id) FROM silver.loan_month WHERE period = "
        "(SELECT max(period) FROM silver.loan_month)"
    ).fetchone()
    con.close()
    assert rows == (len(lines), len(lines), 1)
    assert correction.rows_landed == len(lines)


def _set_field(line: str, position: int, value: str) -> str:
    fields = line.split("|")
    fields[position - 1] = value
    return "|".join(fields)
