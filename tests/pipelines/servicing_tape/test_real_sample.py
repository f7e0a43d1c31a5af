"""The real Fannie Mae legacy sample (2000Q1) end to end, when ../shared/samples is present.

Fannie Mae's terms allow internal validation only, so the files are read from where they
are and never copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from servicervault.config import PROJECT_ROOT
from servicervault.stages.extract import extract, read_manifests
from servicervault.stages.transform import transform
from servicervault.stages.validate import warehouse_path
from servicervault.storage import Bucket
from tests.conftest import MakeTenant

SAMPLE = (
    Path(os.environ.get("VAULT_SAMPLES_DIR", PROJECT_ROOT.parent / "shared" / "samples"))
    / "fannie_mae_legacy_2000Q1"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"real sample not present at {SAMPLE}"),
]


def test_the_legacy_sample_lands_whole_and_builds(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(sources=[{"name": "fnma", "layout": "fannie_legacy", "inbound": "in/"}])
    bucket = Bucket.for_tenant(tenant)
    for name in ("Acquisition_2000Q1.txt", "Performance_2000Q1-P.txt"):
        bucket.put_file(SAMPLE / name, f"in/{name}")
    [result] = extract(tenant)
    files = {f["key"]: (f["kind"], f["rows_in"], f["rows_quarantined"]) for f in result.files}
    assert files == {
        "in/Acquisition_2000Q1.txt": ("acquisition", 5000, 0),
        "in/Performance_2000Q1-P.txt": ("performance", 10000, 0),
    }
    # The file is sorted by date *as text* (01/01/2001 before 02/01/2000); landed rows are
    # in true order per loan.
    [manifest] = read_manifests(bucket, "fnma")
    landed = pq.read_table(
        [bucket.local_path(f["key"]) for f in manifest["tables"]["loan_month"]["files"]],
        columns=["loan_id", "period"],
    ).to_pylist()
    keys = [(r["loan_id"], r["period"]) for r in landed]
    assert keys == sorted(keys)

    transform(tenant)
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    counts = con.execute(
        "SELECT count(*), count(DISTINCT loan_id), min(period), max(period), "
        "count(*) FILTER (WHERE dlq_status = 'XX'), count(zero_balance_code), "
        "count(*) FILTER (WHERE status = 'prepaid') FROM silver.loan_month"
    ).fetchone()
    loans = con.execute("SELECT count(*), count(ocltv), max(orig_upb) FROM silver.loan").fetchone()
    con.close()
    rows, loan_ids, first, last, unknown, zb, prepaid = counts
    assert (rows, loan_ids) == (10000, 276)
    assert (str(first), str(last)) == ("2000-01-01", "2017-12-01")
    assert unknown == 278  # -1 (4 rows) and -2 (274 rows) are unknown, never current
    assert zb == 275 and prepaid > 200  # literal NULL is no code; the rest are real codes
    assert loans[0] == 5000 and loans[1] < 100  # OCLTV mostly blank in this copy
