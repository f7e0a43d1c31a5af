"""The real Fannie Mae legacy sample (2000Q1) end to end, when ../shared/samples is present.

Fannie Mae's terms allow internal validation only, so the files are read from where they
are and never copied into the project.
"""

from __future__ import annotations

import datetime as dt
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
    # Every (loan, month) of the raw file lands once, its MM/DD/YYYY date read as a date.
    [manifest] = read_manifests(bucket, "fnma")
    landed = pq.read_table(
        [bucket.local_path(f["key"]) for f in manifest["tables"]["loan_month"]["files"]],
        columns=["loan_id", "period"],
    ).to_pylist()
    keys = [(r["loan_id"], r["period"]) for r in landed]
    raw = (SAMPLE / "Performance_2000Q1-P.txt").read_text().splitlines()
    expected = {
        (f[0], dt.datetime.strptime(f[1], "%m/%d/%Y").date())
        for f in (line.split("|") for line in raw)
    }
    assert len(keys) == len(set(keys)) and set(keys) == expected

    transform(tenant)
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    counts = con.execute(
        "SELECT count(*), count(DISTINCT loan_id), min(period), max(period), "
        "count(*) FILTER (WHERE dlq_status = 'XX'), count(zero_balance_code), "
        "count(*) FILTER (WHERE status = 'prepaid') FROM silver.loan_month"
    ).fetchone()
    loans = con.execute("SELECT count(*), count(ocltv), max(orig_upb) FROM silver.loan").fetchone()
    con.close()
    # Expected figures come from the raw text, independently of the parser.
    perf = [ln.split("|") for ln in (SAMPLE / "Performance_2000Q1-P.txt").read_text().splitlines()]
    months = sorted({dt.date(int(f[1][6:]), int(f[1][:2]), 1) for f in perf})
    rows, loan_ids, first, last, unknown, zb, prepaid = counts
    assert (rows, loan_ids) == (len(perf), len({f[0] for f in perf}))
    assert (first, last) == (months[0], months[-1])
    # -1 and -2 are unknown / not applicable, never current; literal NULL is no code.
    assert unknown == sum(f[10] in {"-1", "-2"} for f in perf) > 0
    assert zb == sum(f[12] not in {"NULL", ""} for f in perf)
    assert prepaid == sum(f[12] == "01" for f in perf)
    acq = (SAMPLE / "Acquisition_2000Q1.txt").read_text().splitlines()
    assert loans[0] == len(acq)
    assert loans[1] == sum(ln.split("|")[9] != "" for ln in acq)  # OCLTV mostly blank
