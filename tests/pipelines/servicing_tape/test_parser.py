"""The tape parser: contract types from layout positions, and row-level quarantine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.servicing_tape.parser import TapeError, parse_tape
from servicervault.contracts import contract
from servicervault.layouts import sflp_fields

GOOD = {
    "LOAN_ID": "000000000001",
    "ACT_PERIOD": "032021",
    "CHANNEL": "R",
    "ORIG_RATE": "6.125",
    "CURR_RATE": "6.125",
    "ORIG_UPB": "200000.00",
    "CURRENT_UPB": "198765.43",
    "ORIG_TERM": "360",
    "ORIG_DATE": "112020",
    "FIRST_PAY": "012021",
    "LOAN_AGE": "3",
    "CSCORE_B": "720",
    "DLQ_STATUS": "00",
    "STATE": "CA",
}


def line(field_count: int = 108, **values: str) -> str:
    """A tape line built from the layout file, so positions are never retyped here."""
    row = {**GOOD, **values}
    return "|".join(row.get(f.name, "") for f in sflp_fields(field_count))


def parse(tmp_path: Path, lines: list[str]) -> tuple:
    path = tmp_path / "tape.txt"
    path.write_text("\n".join(lines) + "\n")
    batches = list(parse_tape(path, "fannie_sflp", "inbound/tape.txt", "S1"))
    assert len(batches) == 1
    return batches[0]


def test_a_good_line_is_typed_by_the_contract(tmp_path: Path) -> None:
    batch = parse(tmp_path, [line()])
    row = batch.loan_month.to_pylist()[0]
    assert row["loan_id"] == "000000000001"
    assert row["period"] == dt.date(2021, 3, 1)
    assert row["current_upb"] == pytest.approx(198765.43)
    assert row["loan_age"] == 3
    assert (row["_snapshot_id"], row["_source_file"], row["_line_number"]) == (
        "S1",
        "inbound/tape.txt",
        1,
    )
    loan = batch.loan.to_pylist()[0]
    assert loan["fico"] == 720 and loan["first_pay_date"] == dt.date(2021, 1, 1)
    expected = [c.name for c, _ in contract("silver.loan_month").sourced_columns("fannie_sflp")]
    assert batch.loan_month.column_names[: len(expected)] == expected


def test_newer_110_and_113_field_releases_are_accepted(tmp_path: Path) -> None:
    batch = parse(tmp_path, [line(110), line(113, LOAN_ID="000000000002")])
    assert batch.loan_month.num_rows == 2 and batch.quarantine.num_rows == 0


def test_bad_rows_are_quarantined_with_line_column_and_reason(tmp_path: Path) -> None:
    lines = [
        line(),
        line(ACT_PERIOD="132021"),  # month 13
        "|000000000003|032021|R",  # truncated row
        line(CSCORE_B="9999"),  # out of the contract's range
        line(CHANNEL="Z"),  # not an allowed value
        line(ORIG_UPB="12,000"),  # not a number
        line(LOAN_ID=""),  # required key missing
        line(LOAN_AGE="3.0"),  # a whole number written as a float is fine
    ]
    batch = parse(tmp_path, lines)
    assert batch.rows_in == 8
    assert batch.loan_month.num_rows + batch.quarantine.num_rows == batch.rows_in
    assert batch.loan_month.column("_line_number").to_pylist() == [1, 8]
    reasons = {r["_line_number"]: (r["column"], r["reason"]) for r in batch.quarantine.to_pylist()}
    assert reasons[2][0] == "period" and "cannot read '132021' as DATE (MMYYYY)" in reasons[2][1]
    assert reasons[3] == (None, "line has 4 fields; fannie_sflp has 108, 110, 113")
    assert reasons[4][0] == "fico" and "outside [300, 850]" in reasons[4][1]
    assert reasons[5][0] == "channel" and "'Z' not allowed" in reasons[5][1]
    assert reasons[6][0] == "orig_upb" and "cannot read '12,000'" in reasons[6][1]
    assert reasons[7][0] == "loan_id" and "missing (required)" in reasons[7][1]
    raw = {r["_line_number"]: r["raw_line"] for r in batch.quarantine.to_pylist()}
    assert raw[3] == "|000000000003|032021|R"


def test_loan_attributes_come_from_each_loans_latest_period(tmp_path: Path) -> None:
    batch = parse(tmp_path, [line(ACT_PERIOD="042021", CHANNEL="B"), line(ACT_PERIOD="032021")])
    loans = batch.loan.to_pylist()
    assert len(loans) == 1
    assert loans[0]["as_of_period"] == dt.date(2021, 4, 1) and loans[0]["channel"] == "B"


def test_whole_file_problems_are_clear(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(TapeError, match=r"empty\.txt: the file is empty"):
        list(parse_tape(empty, "fannie_sflp", "empty.txt", "S1"))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"|0001|\xff\xfe\x00garbage\n")
    with pytest.raises(TapeError, match=r"binary\.txt: cannot be read as text"):
        list(parse_tape(binary, "fannie_sflp", "binary.txt", "S1"))
