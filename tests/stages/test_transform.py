"""Transform: models read committed snapshots only and produce the contracted tables."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines.servicing_tape.parser import LINEAGE
from servicervault.config import PROJECT_ROOT, Tenant
from servicervault.contracts import all_contracts
from servicervault.errors import NotReadyError
from servicervault.layouts import sflp_fields
from servicervault.runner import run_stages
from servicervault.stages import transform as transform_stage
from servicervault.stages.extract import extract
from servicervault.stages.transform import FIRST_PERIOD, transform
from servicervault.stages.validate import warehouse_path
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
    fixed = _corrected(small_tapes[1], tmp_path, 9, "9.999")
    lines = fixed.read_text().splitlines()
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


def _corrected(tape: Path, folder: Path, position: int, value: str) -> Path:
    """A correction of ``tape``: field ``position`` (1-based) of every row set to ``value``."""
    lines = tape.read_text().splitlines()
    out = folder / f"{tape.stem}_corrected.txt"
    out.write_text("\n".join(_set_field(line, position, value) for line in lines) + "\n")
    return out


def test_gold_tables_reconcile_with_each_other(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path]
) -> None:
    """Each gold table re-slices the same loan-months, so their totals must agree.

    Two deliveries (months 1-12, then 13-18) so the data-quality scorecard has two snapshots
    and the second one's loan rows are compared with the first's.
    """
    tenant = make_tenant()
    deliver(tenant, small_tapes[:12])
    extract(tenant)
    deliver(tenant, small_tapes[12:])
    extract(tenant)
    result = transform(tenant)
    assert len(result.snapshot_ids) == 2
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)

    def rows(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    # Every dimension of the stratifications partitions the period's active book.
    assert not rows(
        "SELECT s.period, s.dimension FROM gold.stratifications AS s "
        "JOIN gold.portfolio_monthly AS p USING (period) "
        "GROUP BY s.period, s.dimension, p.active_loans, p.active_upb "
        "HAVING SUM(s.loans) <> p.active_loans OR ABS(SUM(s.upb) - p.active_upb) > 0.01 * COUNT(*)"
    )
    assert rows("SELECT COUNT(DISTINCT dimension) FROM gold.stratifications") == [(7,)]
    # Loss mitigation counts over the same active book.
    assert not rows(
        "SELECT period FROM gold.loss_mitigation_monthly AS m JOIN gold.portfolio_monthly AS p "
        "USING (period) WHERE m.active_loans <> p.active_loans "
        "OR ABS(m.active_upb - p.active_upb) > 0.01"
    )
    # Vintage curves end at the book's total prepayments and defaults.
    [(prepaid, defaulted)] = rows(
        "SELECT SUM(prepaid_loans), SUM(defaulted_loans) FROM gold.portfolio_monthly"
    )
    [(cum_prepaid, cum_defaulted, cohort)] = rows(
        "SELECT SUM(p), SUM(d), SUM(n) FROM (SELECT vintage, MAX(cum_prepaid_loans) AS p, "
        "MAX(cum_defaulted_loans) AS d, MAX(loans) AS n FROM gold.vintage_curves GROUP BY vintage)"
    )
    assert (cum_prepaid, cum_defaulted) == (prepaid, defaulted)
    assert cohort == rows("SELECT COUNT(DISTINCT loan_id) FROM silver.loan_month")[0][0]
    # One loss-severity row per liquidated loan, its components adding up to the net loss.
    assert rows("SELECT COUNT(*) FROM gold.loss_severity") == [(defaulted,)]
    assert not rows(
        "SELECT loan_id FROM gold.loss_severity WHERE loss_complete AND ABS(net_loss - "
        "(upb_at_removal + total_expenses + principal_forgiveness + carrying_interest "
        "- total_proceeds)) > 0.005"
    )
    # The generator's tapes are clean: every data-quality check must pass (a failure here is
    # a check that misfires), both datasets of both deliveries are scored, nothing quarantined.
    quality = rows(
        "SELECT snapshot_id, dataset, rows_in, rows_quarantined, accuracy, completeness, "
        "consistency, validity, accuracy_checks > 0 FROM gold.data_quality ORDER BY ALL"
    )
    assert [(s, d) for s, d, *_ in quality] == [
        (s, d) for s in sorted(result.snapshot_ids) for d in ("loan", "loan_month")
    ]
    for _s, _d, rows_in, quarantined, *scores, checked in quality:
        assert rows_in > 0 and quarantined == 0
        assert scores == [1.0, 1.0, 1.0, 1.0] and checked
    con.close()


def _built(make_tenant: MakeTenant, deliver: Deliver, tapes: list[Path]) -> Tenant:
    """A new tenant with ``tapes`` delivered, landed and built."""
    tenant = make_tenant()
    deliver(tenant, tapes)
    extract(tenant)
    transform(tenant)
    return tenant


def _release_a_loan_count_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: str = "*"
) -> None:
    """Install a release of the project that adds ``gold.loan_count`` (loans in silver.loan);
    installed again with another ``counted``, a release that changes that model."""
    project = _install_release(tmp_path, monkeypatch)
    (project / "models" / "gold" / "loan_count.sql").write_text(
        "MODEL (name gold.loan_count, kind FULL);\n"
        f"SELECT count({counted}) AS loans FROM silver.loan\n"
    )


def _install_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's models, macros and audits that the builds then use."""
    project = tmp_path / "release"
    for folder in ("models", "macros", "audits"):
        shutil.copytree(PROJECT_ROOT / folder, project / folder, dirs_exist_ok=True)
    monkeypatch.setattr(transform_stage, "PROJECT_ROOT", project)
    return project


def _loan_count(tenant: Tenant) -> int:
    """What the release's ``gold.loan_count`` holds in the tenant's warehouse."""
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    try:
        return con.execute("SELECT loans FROM gold.loan_count").fetchone()[0]
    finally:
        con.close()


def test_model_changes_reach_an_existing_warehouse(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A release that adds a model must build it on the next run of every existing tenant."""
    tenant = _built(make_tenant, deliver, small_tapes[:2])

    _release_a_loan_count_model(tmp_path, monkeypatch)
    result = transform(tenant)
    assert result.rows["gold.loan_count"] == 1
    assert result.rebuilt_from == FIRST_PERIOD  # reported as a rebuild of every period
    assert _loan_count(tenant) == result.rows["silver.loan"]


def _model_tables(tenant: Tenant) -> list[str]:
    """The tables and views SQLMesh keeps model versions in, as ``schema.name``."""
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        ).fetchall()
    finally:
        con.close()
    return [name for (name,) in rows if name.startswith("sqlmesh__")]


def _versions_kept(tenant: Tenant) -> Counter[str]:
    """How many versions of each model the warehouse keeps a table or view of."""
    return Counter(re.sub(r"__[0-9]+$", "", t.split(".")[1]) for t in _model_tables(tenant))


def test_a_release_removes_the_tables_of_the_model_versions_it_replaces(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLMesh keeps a replaced model version's table until its janitor removes it: a release
    that changes a model must remove the old version, or every release grows the warehouse."""
    tenant = _built(make_tenant, deliver, small_tapes[:2])
    _release_a_loan_count_model(tmp_path, monkeypatch)
    assert transform(tenant).removed_tables == []  # an added model replaces nothing
    (first,) = [t for t in _model_tables(tenant) if "gold__loan_count__" in t]

    _release_a_loan_count_model(tmp_path, monkeypatch, counted="loan_id")
    result = transform(tenant)
    assert (result.removed_tables, result.cleanup_failure) == ([first], None)
    assert set(_versions_kept(tenant).values()) == {1}
    assert _loan_count(tenant) == result.rows["silver.loan"]


def test_a_cleanup_that_fails_keeps_the_build_and_the_next_release_removes_what_it_left(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed cleanup is reported, not fatal: the build it follows is complete. A build
    without model changes replaces nothing and does not run it (it costs a nightly month)."""
    from sqlmesh import Context

    tenant = make_tenant()
    deliver(tenant, small_tapes[:2])
    extract(tenant)
    _release_a_loan_count_model(tmp_path, monkeypatch)
    transform(tenant)

    def failing(*_args: object, **_kwargs: object) -> bool:
        raise OSError("disk I/O error")

    with monkeypatch.context() as janitor:
        janitor.setattr(Context, "run_janitor", failing)
        _release_a_loan_count_model(tmp_path, monkeypatch, counted="loan_id")
        (record,) = run_stages(tenant, ("transform",))
        assert record.status == "ok"
        assert record.details["cleanup_failure"] == "OSError: disk I/O error"
        assert (
            "WARNING: the tables of replaced model versions could not be removed "
            "(OSError: disk I/O error)" in record.message
        )
        assert record.details["removed_tables"] == []
        assert _versions_kept(tenant)["gold__loan_count"] == 2
        assert _loan_count(tenant) == record.details["rows"]["silver.loan"]

        deliver(tenant, small_tapes[2:3])
        extract(tenant)
        nightly = transform(tenant)
        assert (nightly.rebuilt_from, nightly.cleanup_failure) == (_period(small_tapes[2]), None)

    _release_a_loan_count_model(tmp_path, monkeypatch, counted="DISTINCT loan_id")
    (record,) = run_stages(tenant, ("transform",))
    assert "; 2 table(s) of replaced model versions removed" in record.message
    assert len(record.details["removed_tables"]) == 2 and not record.details["cleanup_failure"]
    assert set(_versions_kept(tenant).values()) == {1}
    assert _loan_count(tenant) == record.details["rows"]["silver.loan"]


def test_a_session_opened_before_extract_deploys_its_planned_changes_and_builds_what_lands(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run's transform worker opens its session, and plans the models' changes, while
    extract works: the build then deploys that plan and covers the month landed after it."""
    tenant = _built(make_tenant, deliver, small_tapes[:3])

    session = transform_stage.open_session(tenant)
    assert not session.changes.context_diff.has_changes
    deliver(tenant, small_tapes[3:4])
    extract(tenant)
    result = transform(tenant, session)
    assert (result.changed_models, result.rebuilt_from) == ([], _period(small_tapes[3]))
    _assert_same_as_a_full_build(tenant, make_tenant, "fresh")

    _release_a_loan_count_model(tmp_path, monkeypatch)
    session = transform_stage.open_session(tenant)
    assert session.changes.context_diff.has_changes
    deliver(tenant, small_tapes[4:5])
    extract(tenant)
    result = transform(tenant, session)
    assert any("loan_count" in m for m in result.changed_models), result.changed_models
    assert result.rebuilt_from == FIRST_PERIOD
    assert _loan_count(tenant) == result.rows["silver.loan"]
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    assert con.execute("SELECT max(period) FROM silver.loan_month").fetchone()[0] == _period(
        small_tapes[4]
    )
    con.close()


def test_months_without_loan_attributes_fail_the_build_naming_the_audit(
    make_tenant: MakeTenant, tmp_path: Path
) -> None:
    from servicervault.stages.transform import TransformError
    from tests.pipelines.servicing_tape.test_parser import LEGACY_ACQ, LEGACY_PERF, line

    tenant = make_tenant(sources=[{"name": "fnma", "layout": "fannie_legacy", "inbound": "in/"}])
    bucket = Bucket.for_tenant(tenant)
    perf = [line("fnma_legacy_performance.csv", LEGACY_PERF, LOAN_ID=i) for i in ("1", "2")]
    bucket.put_bytes(("\n".join(perf) + "\n").encode(), "in/perf.txt")
    acq = line("fnma_legacy_acquisition.csv", LEGACY_ACQ, 25, LOAN_ID="1")
    bucket.put_bytes((acq + "\n").encode(), "in/acq.txt")
    extract(tenant)
    with pytest.raises(TransformError, match="audit every_loan_month_has_a_loan failed for 1 row"):
        transform(tenant)


def test_a_new_month_without_loan_attributes_fails_the_build_it_rebuilds(
    make_tenant: MakeTenant,
) -> None:
    """The audit reads only the periods being built; a later month's orphan is among them."""
    from servicervault.stages.transform import TransformError
    from tests.pipelines.servicing_tape.test_parser import LEGACY_ACQ, LEGACY_PERF, line

    tenant = make_tenant(sources=[{"name": "fnma", "layout": "fannie_legacy", "inbound": "in/"}])
    bucket = Bucket.for_tenant(tenant)
    first = line("fnma_legacy_performance.csv", LEGACY_PERF, LOAN_ID="1")
    bucket.put_bytes((first + "\n").encode(), "in/perf-2001-01.txt")
    acq = line("fnma_legacy_acquisition.csv", LEGACY_ACQ, 25, LOAN_ID="1")
    bucket.put_bytes((acq + "\n").encode(), "in/acq.txt")
    extract(tenant)
    transform(tenant)
    orphan = {"LOAN_ID": "2", "Monthly.Rpt.Prd": "02/01/2001"}
    later = line("fnma_legacy_performance.csv", LEGACY_PERF, **orphan)
    bucket.put_bytes((later + "\n").encode(), "in/perf-2001-02.txt")
    extract(tenant)
    with pytest.raises(TransformError, match="audit every_loan_month_has_a_loan failed for 1 row"):
        transform(tenant)


def test_a_vault_home_with_a_quote_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servicervault.config import ConfigError, vault_home

    monkeypatch.setenv("VAULT_HOME", str(tmp_path / "o'brien"))
    with pytest.raises(ConfigError, match="contains a quote"):
        vault_home()


@contextmanager
def _building(
    tenant: Tenant, snapshot_ids: list[str], execution_time: str | None = None
) -> Iterator[tuple[Any, Any]]:
    """A build of ``snapshot_ids`` whose SQLMesh context and console are still open."""
    from servicervault.stages.transform import _build, open_session

    session = open_session(tenant, execution_time)
    try:
        _build(session, snapshot_ids, execution_time=execution_time)
        yield session.context, session.console
    finally:
        session.context.close()


def test_a_run_on_a_new_day_builds_every_model_once(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path]
) -> None:
    """A plan on a new day has a new interval for every model; applied before the restatement
    it made every model build twice per nightly run."""
    tenant = make_tenant()
    deliver(tenant, small_tapes[:3])
    extract(tenant)
    first = transform(tenant)
    assert set(first.model_seconds) >= {t for t in first.rows}  # the ledger's per-model time

    deliver(tenant, small_tapes[3:4])
    [month] = extract(tenant)
    snapshots = [*first.snapshot_ids, month.snapshot_id]
    with _building(tenant, snapshots, execution_time="2099-01-02") as (_context, console):
        assert set(console.evaluations) >= set(first.rows)
        assert set(console.evaluations.values()) == {1}, console.evaluations


def test_only_a_new_months_build_skips_vacuuming_and_runs_two_models_at_a_time(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    """A new month deletes no built row, so the checkpoint closing its build skips vacuuming
    (1 s of a nightly build at 12 M), and its small queries run two at a time. A correction of
    a built month deletes that month's rows, and vacuuming reclaims their space; it and a first
    build run one model at a time, as a build of every period holds more memory."""
    tenant = make_tenant()
    deliver(tenant, small_tapes[:3])
    [first] = extract(tenant)

    def build(snapshot_ids: list[str]) -> tuple[int, int]:
        """The build's vacuum tasks and how many models it ran at once."""
        with _building(tenant, snapshot_ids) as (context, _console):
            (tasks,) = context.engine_adapter.fetchone("SELECT current_setting('max_vacuum_tasks')")
            return tasks, context.concurrent_tasks

    assert build([first.snapshot_id])[1] == 1
    deliver(tenant, small_tapes[3:4])
    [month] = extract(tenant)
    assert build([first.snapshot_id, month.snapshot_id]) == (0, 2)
    deliver(tenant, [_corrected(small_tapes[1], tmp_path, 9, "9.999")])
    [correction] = extract(tenant)
    all_three = [first.snapshot_id, month.snapshot_id, correction.snapshot_id]
    vacuum_tasks, models_at_once = build(all_three)
    assert vacuum_tasks > 0
    assert models_at_once == 1


def _period(tape: Path) -> date:
    """The reporting month of a generated tape, from its name (``sflp_YYYYMM.txt``)."""
    stamp = tape.stem.split("_")[1]
    return date(int(stamp[:4]), int(stamp[4:]), 1)


def _contract_tables(tenant: Tenant) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    try:
        return {
            table: con.execute(f"SELECT * FROM {table} ORDER BY {', '.join(c.primary_key)}").df()
            for table, c in all_contracts().items()
        }
    finally:
        con.close()


def _assert_same_as_a_full_build(tenant: Tenant, make_tenant: MakeTenant, name: str) -> None:
    """Build the tenant's snapshots from scratch in a new tenant; every table must agree."""
    fresh = make_tenant(name)
    source = Bucket.for_tenant(tenant).local_path("snapshots")
    shutil.copytree(source, Bucket.for_tenant(fresh).local_path("snapshots"))
    assert transform(fresh).rebuilt_from == FIRST_PERIOD
    built, expected = _contract_tables(tenant), _contract_tables(fresh)
    for table, frame in expected.items():
        assert len(frame) > 0 or table == "gold.loss_severity", table
        assert list(built[table].columns) == list(frame.columns), table
        assert len(built[table]) == len(frame), table
        for column in frame.columns:
            ours, theirs = built[table][column], frame[column]
            where = f"{table}.{column}"
            if not pd.api.types.is_float_dtype(theirs):
                pd.testing.assert_series_equal(ours, theirs, obj=where)
                continue
            # Sums of doubles depend on the order they are added in, and a money column
            # rounded to the cent can then land on the neighbouring cent.
            money = column == "upb" or column.endswith("_upb")
            np.testing.assert_allclose(
                ours, theirs, rtol=1e-9, atol=0.0100001 if money else 0, err_msg=where
            )


def test_a_build_after_an_interrupted_one_rebuilds_every_period(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a killed build rebuilt is unknown, so the next one rebuilds, and reports, all."""
    tenant = _built(make_tenant, deliver, small_tapes[:3])
    deliver(tenant, small_tapes[3:4])
    extract(tenant)

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt  # as a signal would, after the build has started changing tables

    with monkeypatch.context() as patched:
        patched.setattr(transform_stage, "_first_changed_period", killed)
        with pytest.raises(KeyboardInterrupt):
            transform(tenant)
    assert transform(tenant).rebuilt_from == FIRST_PERIOD
    assert transform(tenant).rebuilt_from is None  # finished: only what is new again
    _assert_same_as_a_full_build(tenant, make_tenant, "fresh")


def _restated_credit_score(tape: Path, tmp_path: Path) -> tuple[Path, str]:
    """``tape`` with its first loan's credit score restated from 620 or more to 600 (a
    failed accuracy check against that loan's previous delivery); the new tape and the loan."""
    position = [f.name for f in sflp_fields()].index("CSCORE_B") + 1
    lines = tape.read_text().splitlines()
    assert int(lines[0].split("|")[position - 1]) >= 620
    lines[0] = _set_field(lines[0], position, "600")
    restated = tmp_path / "sflp_restated.txt"
    restated.write_text("\n".join(lines) + "\n")
    return restated, lines[0].split("|")[1]


def test_a_release_that_edits_the_last_delivery_model_checks_new_rows_against_earlier_ones(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A release rebuilds an edited silver.loan_last_delivery from every delivery but the ones
    landed with it, which the build then checks against it: the month's restated credit score
    fails its accuracy check, as in a full build, rather than being compared with itself."""
    tenant = _built(make_tenant, deliver, small_tapes[:3])
    model = _install_release(tmp_path, monkeypatch) / "models" / "silver" / "loan_last_delivery.sql"
    model.write_text(model.read_text().replace("FROM bronze.loan\n", "FROM bronze.loan AS b\n"))
    deliver(tenant, [_restated_credit_score(small_tapes[3], tmp_path)[0]])
    extract(tenant)
    result = transform(tenant)
    assert any("loan_last_delivery" in m for m in result.changed_models), result.changed_models
    con = duckdb.connect(str(warehouse_path(tenant)), read_only=True)
    checks, passed = con.execute(
        "SELECT accuracy_checks, accuracy_passed FROM silver.loan_checks "
        "ORDER BY snapshot_id DESC LIMIT 1"
    ).fetchone()
    con.close()
    assert checks - passed == 1
    _assert_same_as_a_full_build(tenant, make_tenant, "fresh")


def test_a_build_rebuilds_only_the_periods_new_snapshots_touch(
    make_tenant: MakeTenant, deliver: Deliver, small_tapes: list[Path], tmp_path: Path
) -> None:
    """Each incremental build must equal a full build of the same snapshots."""
    tenant = make_tenant()
    deliver(tenant, small_tapes[:6])
    extract(tenant)
    assert transform(tenant).rebuilt_from == FIRST_PERIOD
    assert transform(tenant).rebuilt_from is None  # nothing new landed

    deliver(tenant, small_tapes[6:7])  # next month
    extract(tenant)
    assert transform(tenant).rebuilt_from == _period(small_tapes[6])
    _assert_same_as_a_full_build(tenant, make_tenant, "fresh1")

    # A correction of month 3 restates every loan's current rate (field 9).
    deliver(tenant, [_corrected(small_tapes[2], tmp_path, 9, "9.999")])
    extract(tenant)
    assert transform(tenant).rebuilt_from == _period(small_tapes[2])
    _assert_same_as_a_full_build(tenant, make_tenant, "fresh2")

    # Month 8 restates one loan's credit score: the loan moves to another FICO stratum in
    # every period since its first, so the build goes back to that loan's first period.
    restated, loan_id = _restated_credit_score(small_tapes[7], tmp_path)
    deliver(tenant, [restated])
    extract(tenant)
    first_month = min(_period(t) for t in small_tapes[:8] if f"|{loan_id}|" in t.read_text())
    assert first_month < _period(small_tapes[2])
    assert transform(tenant).rebuilt_from == first_month
    _assert_same_as_a_full_build(tenant, make_tenant, "fresh3")
