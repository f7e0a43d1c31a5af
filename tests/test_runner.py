"""The runner: the ledger, the validation gate in front of publish, one run per tenant."""

from __future__ import annotations

import re
from datetime import date
from functools import partial
from pathlib import Path

import duckdb
import pytest

from servicervault import ledger
from servicervault.config import Tenant
from servicervault.ledger import TenantBusyError
from servicervault.runner import run_stages
from servicervault.stages.publish import analytics_path
from servicervault.stages.validate import warehouse_path
from servicervault.storage import sha256_file
from tests.conftest import Deliver, MakeTenant

pytestmark = pytest.mark.slow


def _corrupt_gold(warehouse: Path) -> None:
    """Simulate a model bug: an SMM of 2 (200 %) lands in the physical gold table."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{warehouse}' AS warehouse")
    view_sql = con.execute(
        "SELECT sql FROM duckdb_views() WHERE schema_name = 'gold' "
        "AND view_name = 'portfolio_monthly'"
    ).fetchone()[0]
    physical = re.search(r"FROM (\S+__portfolio_monthly__\d+)", view_sql).group(1)
    con.execute(f"UPDATE {physical} SET smm = 2 WHERE smm IS NOT NULL")
    con.close()


def test_a_failed_expectation_stops_the_run_and_nothing_is_published(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path]
) -> None:
    tenant = make_tenant()
    deliver(tenant, small_tapes[:4])
    records = run_stages(tenant)
    assert [(r.stage, r.status) for r in records] == [
        ("extract", "ok"),
        ("transform", "ok"),
        ("validate", "ok"),
        ("publish", "ok"),
        ("drop", "ok"),
    ]
    # Stages ran before transform and validate, so each ran in the worker started with the
    # run (its peak memory, SQLMesh or GX loaded, is recorded); run first, a stage runs in the
    # run's own process.
    assert records[1].details["worker_peak_rss_mib"] > 100
    assert records[2].details["worker_peak_rss_mib"] > 100
    # So is the CPU each worker had used by its result, its library's import included, and the
    # CPU the run's own process had used by the end of each stage.
    assert records[1].details["worker_cpu_seconds"] > 0.5
    assert records[2].details["worker_cpu_seconds"] > 0.5
    used = [r.details["process_cpu_seconds"] for r in records]
    assert used[0] > 0 and used == sorted(used)
    # The publication was written while the worker validated, and put in place after; the
    # worker wrote the validation's reports after its outcome, before the run ended.
    assert records[3].details["written_during_validation"] is True
    assert Path(records[2].details["data_docs"]).is_file()
    assert Path(records[2].details["results_json"]).is_file()
    published = sha256_file(analytics_path(tenant))

    _corrupt_gold(warehouse_path(tenant))
    records = run_stages(tenant, ("validate", "publish"))
    assert [(r.stage, r.status) for r in records] == [("validate", "failed")]
    assert records[0].details["worker_peak_rss_mib"] is None
    assert records[0].details["worker_cpu_seconds"] is None
    failure = records[0].message
    assert "gold.portfolio_monthly" in failure and "smm" in failure
    assert "expect_column_values_to_be_between" in failure
    assert Path(records[0].details["data_docs"]).is_file()

    # The worker's verdict stops the run the same way (nothing new: transform keeps the table).
    records = run_stages(tenant, ("transform", "validate", "publish"))
    assert [(r.stage, r.status) for r in records] == [("transform", "ok"), ("validate", "failed")]
    assert records[0].details["worker_peak_rss_mib"] is None
    # The publication written during that validation was thrown away, not left beside.
    assert sorted(p.name for p in tenant.home.iterdir() if p.name.startswith(".")) == []
    assert "smm" in records[1].message and records[1].details["worker_peak_rss_mib"] > 100
    assert Path(records[1].details["data_docs"]).is_file()

    [refused] = run_stages(tenant, ("publish",))
    assert refused.status == "failed" and "failed validation; nothing published" in refused.message
    assert sha256_file(analytics_path(tenant)) == published

    # Every stage execution is in the ledger, stages of one run sharing its run id.
    stages = [(r.stage, r.status) for r in ledger.records(tenant)]
    assert stages[-2:] == [("validate", "failed"), ("publish", "failed")]
    assert len({r.run_id for r in ledger.records(tenant)}) == 4


def test_a_transform_error_in_its_worker_fails_the_run_with_its_message(
    make_tenant: MakeTenant,
) -> None:
    records = run_stages(make_tenant(), ("extract", "transform", "validate"))
    assert [(r.stage, r.status) for r in records] == [("extract", "ok"), ("transform", "failed")]
    assert "has no committed snapshots" in records[1].message


def test_extract_leaves_a_core_to_the_transform_worker_importing_beside_it(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The transform starts by waiting for its worker's import, which runs beside extract."""
    from servicervault.stages import extract as extract_stage

    spared: list[bool] = []
    real = extract_stage.extract

    def extract(tenant: Tenant, progress: object = None, spare_a_core: bool = False) -> list:
        spared.append(spare_a_core)
        return real(tenant, progress, spare_a_core)

    monkeypatch.setattr(extract_stage, "extract", extract)
    tenant = make_tenant()
    deliver(tenant, small_tapes[:1])
    run_stages(tenant, ("extract",))
    deliver(tenant, small_tapes[1:2])
    records = run_stages(tenant, ("extract", "transform"))
    assert [r.status for r in records] == ["ok", "ok"]
    assert spared == [False, True]


def test_one_run_at_a_time_per_tenant(make_tenant: MakeTenant) -> None:
    tenant = make_tenant()
    with ledger.tenant_lock(tenant), pytest.raises(TenantBusyError, match="is busy"):
        run_stages(tenant, ("extract",))


def test_an_attributes_only_correction_is_a_new_build_and_a_new_drop(
    make_tenant: MakeTenant, tmp_path: Path
) -> None:
    from servicervault.storage import Bucket
    from tests.pipelines.servicing_tape.test_parser import FREDDIE_ORIG, FREDDIE_SVCG, line

    tenant = make_tenant(sources=[{"name": "fhlmc", "layout": "freddie_sflld", "inbound": "in/"}])
    bucket = Bucket.for_tenant(tenant)
    months = [
        line("fhlmc_sflld_svcg.csv", FREDDIE_SVCG, 32, **{"Monthly Reporting Period": p,
             "Current Loan Delinquency Status": "0"})
        for p in ("202104", "202105")
    ]  # fmt: skip
    bucket.put_bytes(("\n".join(months) + "\n").encode(), "in/svcg.txt")
    bucket.put_bytes((line("fhlmc_sflld_orig.csv", FREDDIE_ORIG) + "\n").encode(), "in/orig.txt")
    first = run_stages(tenant)
    assert [r.status for r in first] == ["ok"] * 5

    corrected = line("fhlmc_sflld_orig.csv", FREDDIE_ORIG, **{"Credit Score": "701"})
    bucket.put_bytes((corrected + "\n").encode(), "in/orig_corrected.txt")
    second = run_stages(tenant)
    assert [r.status for r in second] == ["ok"] * 5
    assert second[1].details["build_id"] != first[1].details["build_id"]
    assert second[2].details["build_id"] == second[1].details["build_id"]  # validated
    assert (
        second[4].details["created"] and second[4].details["drop_id"] != first[4].details["drop_id"]
    )
    con = duckdb.connect(str(analytics_path(tenant)), read_only=True)
    assert con.execute("SELECT fico FROM gold.loan_snapshot").fetchone() == (701,)
    con.close()


def _record(tenant: Tenant, stage: str, status: str, **details: object) -> None:
    """A ledger record as a stage would append it; only the fields the rules read matter."""
    ledger.append(
        tenant, ledger.StageRecord("r", tenant.id, stage, status, "t", 1.0, 0, "", details)
    )


def test_publish_reuses_only_periods_no_build_since_the_publication_rebuilt(
    make_tenant: MakeTenant,
) -> None:
    """The transforms after the published build say what to copy again; any doubt copies all."""
    from servicervault.runner import _unchanged_before

    tenant = make_tenant()

    def transform(build_id: str, rebuilt_from: str | None, status: str = "ok") -> None:
        if status == "ok":
            _record(tenant, "transform", status, build_id=build_id, rebuilt_from=rebuilt_from)
        else:
            _record(tenant, "transform", status)

    def publish(build_id: str) -> None:
        _record(tenant, "publish", "ok", build_id=build_id, rebuilt_from=None)

    def unchanged_before(build_id: str | None) -> date | None:
        return _unchanged_before(tenant, "publish", build_id)

    transform("b1", "1970-01-01")
    assert unchanged_before(None) is None  # nothing published yet
    assert unchanged_before("b1") is None  # the ledger has no publication of it
    publish("b1")
    assert unchanged_before("b1") == date.max  # nothing rebuilt since
    transform("b2", "2024-05-01")
    publish("b2")
    transform("b3", "2024-03-01")
    transform("b3", None)
    assert unchanged_before("b1") == date(2024, 3, 1)  # the earliest of them
    assert unchanged_before("b2") == date(2024, 3, 1)
    assert unchanged_before("unknown") is None
    publish("b3")
    transform("b4", None, status="failed")
    transform("b4", "2024-06-01")
    assert unchanged_before("b3") is None  # a failed transform may have rebuilt more
    # A failed transform between two transforms of the same build counts too: the build id
    # came back, the warehouse may not have.
    transform("b5", "2024-07-01")
    publish("b5")
    transform("b6", None, status="failed")
    transform("b5", None)
    assert unchanged_before("b5") is None


def test_validation_rechecks_every_period_no_passed_validation_of_the_same_suites_saw(
    make_tenant: MakeTenant,
) -> None:
    """Periods are checked again until a validation with today's suites has passed on them."""
    from servicervault.runner import _unchecked_from

    tenant = make_tenant()

    record = partial(_record, tenant)
    record("transform", "ok", build_id="b1", rebuilt_from="1970-01-01")
    assert _unchecked_from(tenant, "s1") is None  # never validated: check everything
    record("validate", "ok", build_id="b1", suites="s1")
    assert _unchecked_from(tenant, "s1") == date.max  # nothing rebuilt since
    assert _unchecked_from(tenant, "s2") is None  # the expectations changed: check everything
    record("transform", "ok", build_id="b2", rebuilt_from="2024-05-01")
    record("validate", "failed", build_id="b2", suites="s1")
    record("transform", "ok", build_id="b3", rebuilt_from="2024-06-01")
    # b2's periods failed validation, so they are checked again with b3's.
    assert _unchecked_from(tenant, "s1") == date(2024, 5, 1)
    record("validate", "ok", build_id="b3", suites="s1")
    record("transform", "ok", build_id="b4", rebuilt_from="2024-07-01")
    assert _unchecked_from(tenant, "s1") == date(2024, 7, 1)
    record("validate", "ok", build_id="b4", suites="s1")
    record("transform", "failed")
    record("transform", "ok", build_id="b4", rebuilt_from=None)  # the same build again
    assert _unchecked_from(tenant, "s1") is None
