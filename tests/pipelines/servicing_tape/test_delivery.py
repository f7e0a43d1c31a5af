"""Delivery-wide checks: duplicate keys across files, and the quarantine limit."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.servicing_tape import delivery as delivery_module
from pipelines.servicing_tape.delivery import (
    Delivery,
    QuarantineLimitExceeded,
    TapeFile,
    check_quarantine_limit,
)
from pipelines.servicing_tape.formats import file_kinds
from tests.pipelines.servicing_tape.test_parser import sflp

SFLP = file_kinds("fannie_sflp")[0]


def deliver(
    tmp_path: Path, files: dict[str, list[str]], spare_a_core: bool = False
) -> tuple[Delivery, dict[str, Path]]:
    delivery = Delivery(tmp_path / "work", "S1")
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        delivery.add(TapeFile(path, f"inbound/{name}", "sha", path.stat().st_size), SFLP)
    return delivery, delivery.finish(spare_a_core=spare_a_core)


def test_a_delivery_of_one_group_beside_a_worker_is_parsed_on_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's transform worker imports SQLMesh beside extract, and the transform waits for it:
    a month's tape leaves it a core. A delivery of several groups still uses every core."""
    seen: list[int] = []
    real = delivery_module.parse_files

    def parse_files(con: duckdb.DuckDBPyConnection, *args: object) -> object:
        seen.append(con.execute("SELECT current_setting('threads')").fetchone()[0])
        return real(con, *args)

    monkeypatch.setattr(delivery_module, "parse_files", parse_files)
    every_core = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    files = {"a.txt": [sflp(LOAN_ID="1")], "b.txt": [sflp(LOAN_ID="2")]}
    _, alone = deliver(tmp_path / "alone", files)
    _, beside = deliver(tmp_path / "beside", files, spare_a_core=True)
    monkeypatch.setattr(delivery_module, "GROUP_BYTES", 1)  # each file a group of its own
    deliver(tmp_path / "large", files, spare_a_core=True)
    assert seen == [every_core, 1, every_core, every_core]
    for tables in (alone, beside):
        landed = duckdb.sql(f"SELECT loan_id FROM '{tables['loan_month']}' ORDER BY 1")
        assert landed.fetchall() == [("1",), ("2",)]


def test_a_key_delivered_twice_is_quarantined_and_every_row_is_accounted_for(
    tmp_path: Path,
) -> None:
    delivery, tables = deliver(tmp_path, {
        "a.txt": [sflp(LOAN_ID="1"), sflp(LOAN_ID="2"), sflp(LOAN_ID="1")],
        "b.txt": [sflp(LOAN_ID="2"), sflp(LOAN_ID="3"), sflp(LOAN_ID="3", CHANNEL="Z")],
    })  # fmt: skip
    import duckdb

    landed = duckdb.sql(f"SELECT loan_id, _source_file, _line_number FROM '{tables['loan_month']}'")
    assert landed.fetchall() == [
        ("1", "inbound/a.txt", 1),
        ("2", "inbound/a.txt", 2),
        ("3", "inbound/b.txt", 2),
    ]
    quarantined = duckdb.sql(
        f"SELECT _source_file, _line_number, \"check\", reason FROM '{tables['quarantine']}'"
    ).fetchall()
    assert quarantined == [
        ("inbound/a.txt", 3, "duplicate",
         "duplicate key (loan_id, period) = (1, 2021-03-01), first delivered at inbound/a.txt:1"),
        ("inbound/b.txt", 1, "duplicate",
         "duplicate key (loan_id, period) = (2, 2021-03-01), first delivered at inbound/a.txt:2"),
        ("inbound/b.txt", 3, "not_allowed", "channel: 'Z' is not one of R, C, B, T"),
    ]  # fmt: skip
    a, b = delivery.files
    assert (a.rows_in, a.rows_landed, a.rows_quarantined) == (3, 2, 1)
    assert (b.rows_in, b.rows_landed, b.rows_quarantined) == (3, 1, 2)
    loans = duckdb.sql(f"SELECT loan_id FROM '{tables['loan']}' ORDER BY 1").fetchall()
    assert loans == [("1",), ("2",), ("3",)]  # attributes: one row per loan, not quarantined


def test_above_the_limit_the_delivery_fails_with_its_top_reasons(tmp_path: Path) -> None:
    bad = [sflp(LOAN_ID=str(i), CSCORE_B="9999") for i in range(3)]
    good = [sflp(LOAN_ID=str(i)) for i in range(10, 107)]
    delivery, tables = deliver(tmp_path, {"t.txt": good + bad})
    check_quarantine_limit(delivery.files, tables["quarantine"], limit_pct=5)  # 3 % is fine
    with pytest.raises(QuarantineLimitExceeded) as err:
        check_quarantine_limit(delivery.files, tables["quarantine"], limit_pct=1)
    message = str(err.value)
    assert "3 of 100 rows (3.00 %) broke their contract, above the limit of 1 %" in message
    assert "out_of_range" in message and "fico" in message and "inbound/t.txt:98" in message


def test_loan_attributes_come_from_each_loans_latest_period(tmp_path: Path) -> None:
    _, tables = deliver(tmp_path, {
        "b.txt": [sflp(ACT_PERIOD="042021", CHANNEL="B")],
        "a.txt": [sflp(ACT_PERIOD="032021"), sflp(LOAN_ID="2", ACT_PERIOD="032021")],
    })  # fmt: skip
    import duckdb

    loans = duckdb.sql(
        f"SELECT loan_id, as_of_period, channel FROM '{tables['loan']}' ORDER BY 1"
    ).fetchall()
    assert [(i, str(p), c) for i, p, c in loans] == [
        ("000000000001", "2021-04-01", "B"),
        ("2", "2021-03-01", "R"),
    ]


def test_a_delivery_parsed_in_several_groups_gives_the_same_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "a.txt": [sflp(LOAN_ID="1", ACT_PERIOD="032021"), sflp(LOAN_ID="2")],
        "b.txt": [sflp(LOAN_ID="1", ACT_PERIOD="042021", CHANNEL="B"), sflp(LOAN_ID="2")],
    }
    _, together = deliver(tmp_path / "one", files)
    monkeypatch.setattr("pipelines.servicing_tape.delivery.GROUP_BYTES", 1)  # a file per group
    delivery, apart = deliver(tmp_path / "many", files)
    import duckdb

    for table in ("loan_month", "loan", "quarantine"):
        query = "SELECT * EXCLUDE (_snapshot_id) FROM '{}' ORDER BY ALL"
        assert (
            duckdb.sql(query.format(apart[table])).fetchall()
            == duckdb.sql(query.format(together[table])).fetchall()
        )
    assert duckdb.sql(f"SELECT loan_id, channel FROM '{apart['loan']}' ORDER BY 1").fetchall() == [
        ("1", "B"), ("2", "R"),
    ]  # fmt: skip
    assert [(t.rows_landed, t.rows_quarantined) for t in delivery.files] == [(2, 0), (1, 1)]
