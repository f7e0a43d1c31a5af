"""Tests for servicervault.gx_bridge: Great Expectations over DuckDB tables *and* views.

Importing Great Expectations costs ~8 s, so every data case runs through two module-scoped
validations (one all-passing, one full of defects) and the assertions share them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from servicervault import gx_bridge
from servicervault.gx_bridge import (
    ExpectationFailure,
    ValidationOutcome,
    check_tables,
)


def validate_tables(*args: Any, **kwargs: Any) -> ValidationOutcome:
    """A validation with its reports written, as ``vault validate`` runs it."""
    outcome, write_reports = check_tables(*args, **kwargs)
    write_reports()
    return outcome


# gold.portfolio_monthly is a VIEW over a physical table in another schema, catalog-qualified
# the way SQLMesh publishes models; silver.loan_month is a plain table. Neither is in `main`.
_WAREHOUSE_SQL = """
CREATE SCHEMA sqlmesh__gold;
CREATE SCHEMA gold;
CREATE SCHEMA silver;
CREATE TABLE sqlmesh__gold.gold__portfolio_monthly__123 AS
    SELECT * FROM (VALUES
        (DATE '2024-01-31', 'CA', 10, 1500000.00::DECIMAL(18, 2)),
        (DATE '2024-01-31', 'TX',  5,  700000.00::DECIMAL(18, 2))
    ) AS t(as_of, state, loans, upb);
CREATE VIEW gold.portfolio_monthly AS
    SELECT * FROM warehouse.sqlmesh__gold.gold__portfolio_monthly__123;
CREATE TABLE silver.loan_month (
    loan_id VARCHAR, as_of DATE, state VARCHAR, rate DOUBLE, upb DECIMAL(18, 2)
);
INSERT INTO silver.loan_month VALUES
    ('L1', DATE '2024-01-31', 'CA', 0.050, 100000),
    ('L2', DATE '2024-01-31', 'TX', 0.060, 200000),
    ('L2', DATE '2024-01-31', 'TX', 0.060, 200000),  -- duplicate (loan_id, as_of)
    (NULL, DATE '2024-01-31', 'ZZ', 0.070, 300000),  -- null key, state not in set
    ('L4', DATE '2024-01-31', 'QQ', 1.500, 400000);  -- rate out of range, state not in set
"""


def _exp(expectation_type: str, /, **kwargs: object) -> dict:
    return {"type": expectation_type, "kwargs": kwargs}


PASSING_SUITES: dict[str, list[dict]] = {
    "gold.portfolio_monthly": [
        _exp("expect_table_columns_to_match_set", column_set=["as_of", "state", "loans", "upb"]),
        _exp("expect_column_values_to_not_be_null", column="state"),
        _exp("expect_column_values_to_be_between", column="upb", min_value=0),
        _exp("expect_column_values_to_be_in_set", column="state", value_set=["CA", "TX", "NY"]),
        _exp("expect_compound_columns_to_be_unique", column_list=["as_of", "state"]),
        _exp("expect_column_values_to_be_unique", column="state"),
        _exp("expect_table_row_count_to_be_between", min_value=1, max_value=100),
        _exp("expect_column_values_to_be_of_type", column="upb", type_="DECIMAL"),
    ],
    "silver.loan_month": [
        _exp("expect_column_to_exist", column="loan_id"),
        _exp("expect_column_values_to_not_be_null", column="as_of"),
        _exp("expect_table_row_count_to_be_between", min_value=5, max_value=5),
        {
            **_exp("expect_column_values_to_not_be_null", column="loan_id", mostly=0.8),
            "meta": {"owner": "servicing-data"},
        },
    ],
}

FAILING_SUITES: dict[str, list[dict]] = {
    "silver.loan_month": [
        _exp("expect_column_values_to_not_be_null", column="loan_id"),
        _exp("expect_column_values_to_be_between", column="rate", min_value=0, max_value=0.25),
        _exp("expect_column_values_to_be_in_set", column="state", value_set=["CA", "TX", "NY"]),
        _exp("expect_compound_columns_to_be_unique", column_list=["loan_id", "as_of"]),
        _exp("expect_column_values_to_not_be_null", column="as_of"),  # passes
    ],
    "gold.portfolio_monthly": [
        _exp("expect_table_row_count_to_be_between", min_value=10, max_value=20),
        _exp("expect_column_to_exist", column="servicer_id"),
    ],
    "gold.not_there": [_exp("expect_column_values_to_not_be_null", column="x")],
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(_WAREHOUSE_SQL)
    return path


@pytest.fixture(scope="module")
def passing(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> ValidationOutcome:
    return validate_tables(warehouse, PASSING_SUITES, tmp_path_factory.mktemp("ok"), "ok-run")


@pytest.fixture(scope="module")
def failing(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> ValidationOutcome:
    return validate_tables(warehouse, FAILING_SUITES, tmp_path_factory.mktemp("bad"), "bad-run")


def _failure(outcome: ValidationOutcome, table: str, expectation: str, column: str | None):
    matches = [
        f
        for f in outcome.failed
        if (f.table, f.expectation, f.column) == (table, expectation, column)
    ]
    assert len(matches) == 1, f"expected one {expectation} failure, got:\n{outcome.summary()}"
    return matches[0]


def test_passing_suites_pass_on_table_and_view(passing: ValidationOutcome) -> None:
    assert passing.success, passing.summary()
    assert passing.failed == []
    assert passing.evaluated == sum(len(v) for v in PASSING_SUITES.values())
    assert passing.summary().startswith("PASSED")


def test_rows_checked_are_the_rows_each_suite_saw(passing: ValidationOutcome) -> None:
    assert passing.rows_checked == {"gold.portfolio_monthly": 2, "silver.loan_month": 5}


def test_row_filters_check_only_the_rows_they_select(warehouse: Path, tmp_path: Path) -> None:
    """A filtered suite sees only its rows: defects outside them do not count."""
    suite = [
        *FAILING_SUITES["silver.loan_month"],
        _exp("expect_table_row_count_to_be_between", min_value=1),
    ]

    def only(name: str, condition: str) -> ValidationOutcome:
        tables = {"silver.loan_month": suite}
        filters = {"silver.loan_month": condition}
        return validate_tables(warehouse, tables, tmp_path / name, name, row_filters=filters)

    only_l2 = only("l2", "loan_id IN ('L1', 'L2')")
    assert only_l2.rows_checked == {"silver.loan_month": 3}
    assert [(f.expectation, f.column) for f in only_l2.failed] == [
        ("expect_compound_columns_to_be_unique", "loan_id, as_of")
    ]
    assert "2 of 3 rows unexpected" in only_l2.failed[0].details
    payload = json.loads(only_l2.results_json.read_text())
    assert payload["row_filters"] == {"silver.loan_month": "loan_id IN ('L1', 'L2')"}

    only_l1 = only("l1", "loan_id = 'L1'")
    assert only_l1.success, only_l1.summary()
    assert only_l1.rows_checked == {"silver.loan_month": 1}


def test_a_filtered_suites_sql_run_bare_yields_its_columns_not_its_rows(warehouse: Path) -> None:
    """GX runs a query asset's SQL bare to learn its columns: that must not fetch its rows
    (12 M of them into Python after a full rebuild), while the queries that check them do."""
    from sqlalchemy import create_engine, text

    from servicervault.gx_bridge import DIALECT_DRIVER, _register_dialect, _rows_sql

    _register_dialect()
    engine = create_engine(
        f"duckdb+{DIALECT_DRIVER}:///{warehouse}", connect_args={"read_only": True}
    )
    rows = _rows_sql("silver", "loan_month", "loan_id = 'L2'")
    try:
        with engine.connect() as connection:
            bare = connection.execute(text(rows))
            assert list(bare.keys()) == ["loan_id", "as_of", "state", "rate", "upb"]
            assert bare.fetchall() == []
            counted = connection.execute(text(f"SELECT count(*) FROM ({rows}) AS r")).scalar()
    finally:
        engine.dispose()
    assert counted == 2


def test_failing_suite_fails(failing: ValidationOutcome) -> None:
    assert not failing.success
    # 4 silver defects + 2 on the view; the missing table is reported, not evaluated.
    assert failing.evaluated == 5 + 2
    assert len(failing.failed) == 4 + 2 + 1
    assert all(isinstance(f, ExpectationFailure) for f in failing.failed)


def test_null_in_not_null_column(failing: ValidationOutcome) -> None:
    f = _failure(failing, "silver.loan_month", "expect_column_values_to_not_be_null", "loan_id")
    assert f.details.startswith("1 of 5 rows unexpected")


def test_out_of_range_value(failing: ValidationOutcome) -> None:
    f = _failure(failing, "silver.loan_month", "expect_column_values_to_be_between", "rate")
    assert "1 of 5 rows unexpected" in f.details
    assert "1.5" in f.details
    assert "between 0 and 0.25" in f.details


def test_value_not_in_set(failing: ValidationOutcome) -> None:
    f = _failure(failing, "silver.loan_month", "expect_column_values_to_be_in_set", "state")
    assert "2 of 5 rows unexpected, e.g. ['ZZ', 'QQ']" in f.details


def test_duplicate_compound_key(failing: ValidationOutcome) -> None:
    f = _failure(
        failing, "silver.loan_month", "expect_compound_columns_to_be_unique", "loan_id, as_of"
    )
    assert "2 of 5 rows unexpected" in f.details
    assert "loan_id='L2'" in f.details


def test_failures_on_a_view(failing: ValidationOutcome) -> None:
    f = _failure(failing, "gold.portfolio_monthly", "expect_table_row_count_to_be_between", None)
    assert f.details.startswith("observed 2")
    f = _failure(failing, "gold.portfolio_monthly", "expect_column_to_exist", "servicer_id")
    assert "does not exist" in f.details


def test_missing_table_is_a_failure_not_a_crash(failing: ValidationOutcome) -> None:
    f = _failure(failing, "gold.not_there", "table_exists", None)
    assert "gold.not_there" in f.details


def test_summary_lists_failures_first(failing: ValidationOutcome) -> None:
    lines = failing.summary().splitlines()
    assert lines[0] == "FAILED: 6 of 7 expectations failed; 1 table(s) missing"
    assert lines[1].startswith("  - silver.loan_month.loan_id: expect_column_values_to_not_be_null")
    assert str(failing.data_docs_index) in lines[-1]


def test_results_json_and_data_docs(failing: ValidationOutcome) -> None:
    assert failing.results_json.name == "results.json"
    payload = json.loads(failing.results_json.read_text())
    assert payload["run_name"] == "bad-run"
    assert payload["success"] is False
    assert set(payload["suites"]) == {"silver.loan_month", "gold.portfolio_monthly"}
    assert payload["suites"]["silver.loan_month"]["suite_name"] == "silver.loan_month"
    assert len(payload["failures"]) == len(failing.failed)

    index = failing.data_docs_index
    assert index.name == "index.html"
    assert index.parent == failing.results_json.parent / "data_docs"
    html = index.read_text()
    assert "silver.loan_month" in html
    assert "gold.portfolio_monthly" in html


def test_passing_suites_are_judged_without_samples(passing: ValidationOutcome) -> None:
    """The fast pass: pass or fail only, no unexpected values fetched."""
    payload = json.loads(passing.results_json.read_text())
    results = [r["result"] for suite in payload["suites"].values() for r in suite["results"]]
    assert len(results) == passing.evaluated
    assert all(result == {} for result in results)


def test_failing_suites_are_explained_once_in_results_and_data_docs(
    failing: ValidationOutcome,
) -> None:
    payload = json.loads(failing.results_json.read_text())
    in_set = next(
        r
        for r in payload["suites"]["silver.loan_month"]["results"]
        if r["expectation_config"]["type"] == "expect_column_values_to_be_in_set"
    )
    assert in_set["result"]["partial_unexpected_list"] == ["ZZ", "QQ"]
    # The detailed re-run replaced the bare result: one page per evaluated suite.
    pages = sorted((failing.data_docs_index.parent / "validations").rglob("*.html"))
    assert [page.parent.parent.parent.name for page in pages] == ["portfolio_monthly", "loan_month"]
    assert "ZZ" in pages[1].read_text()


def _results(outcome: ValidationOutcome) -> dict[str, list[tuple]]:
    """Each suite's results as GX reported them, without the run's ids and times."""
    payload = json.loads(outcome.results_json.read_text())
    return {
        name: [
            (
                r["expectation_config"]["type"],
                json.dumps(r["expectation_config"]["kwargs"], sort_keys=True),
                r["success"],
                json.dumps(r["result"], sort_keys=True),
            )
            for r in suite["results"]
        ]
        for name, suite in payload["suites"].items()
    }


def test_expectations_build_their_configuration_once_only_while_suites_run() -> None:
    import great_expectations as gx

    expectation = gx.expectations.ExpectColumnValuesToNotBeNull(column="loan_id")
    assert expectation.configuration is not expectation.configuration  # GX's: built per read
    with gx_bridge._configurations_built_once():
        built = expectation.configuration
        assert expectation.configuration is built
    assert expectation.configuration is not built
    assert expectation.configuration == built


def test_configurations_built_once_give_the_results_gx_gives(
    failing: ValidationOutcome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failing suites, passed and then explained, with GX building every configuration
    at every read: the same results, expectation by expectation."""
    monkeypatch.setattr(gx_bridge, "_configurations_built_once", contextlib.nullcontext)
    warehouse = Path(json.loads(failing.results_json.read_text())["database"])
    as_gx = validate_tables(warehouse, FAILING_SUITES, tmp_path, "bad-run")
    assert _results(as_gx) == _results(failing)
    assert sum(len(results) for results in _results(failing).values()) == failing.evaluated


def test_database_released_after_validation(
    warehouse: Path, passing: ValidationOutcome, failing: ValidationOutcome
) -> None:
    # Read-write needs every read-only connection of this process to be closed.
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("SELECT count(*) FROM silver.loan_month").fetchone() == (5,)


def test_config_errors_raise_before_validation(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"silver\.loan_month.*expect_values_to_be_nice"):
        validate_tables(
            warehouse,
            {"silver.loan_month": [_exp("expect_values_to_be_nice", column="x")]},
            tmp_path,
            "typo",
        )
    with pytest.raises(ValueError, match=r"schema\.table"):
        validate_tables(warehouse, {"gold.portfolio monthly": []}, tmp_path, "typo")
    with pytest.raises(ValueError, match=r"without a suite: \['gold\.other'\]"):
        validate_tables(
            warehouse, PASSING_SUITES, tmp_path, "typo", row_filters={"gold.other": "true"}
        )
    with pytest.raises(FileNotFoundError):
        validate_tables(tmp_path / "nope.duckdb", PASSING_SUITES, tmp_path, "typo")


def test_importing_the_module_does_not_import_great_expectations() -> None:
    code = (
        "import sys, servicervault.gx_bridge; "
        "assert 'great_expectations' not in sys.modules; "
        "assert 'duckdb_engine' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
