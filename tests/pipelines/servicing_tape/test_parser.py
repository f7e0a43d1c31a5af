"""The tape parser: every format's fields typed by the contracts, and row-level quarantine.

Lines are built from the layout CSVs (positions are never retyped here), with values a
servicer of that format would send.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipelines.servicing_tape.formats import FileKind, delimited_kind, file_kinds
from pipelines.servicing_tape.parser import TapeError, TextFile, landed_rows, parse_files
from servicervault.config import DelimitedSpec
from servicervault.layouts import load_layout

SFLP = {
    "LOAN_ID": "000000000001", "ACT_PERIOD": "032021", "CHANNEL": "R", "ORIG_RATE": "6.125",
    "CURR_RATE": "6.125", "ORIG_UPB": "200000.00", "CURRENT_UPB": "198765.43", "ORIG_TERM": "360",
    "ORIG_DATE": "112020", "FIRST_PAY": "012021", "LOAN_AGE": "3", "CSCORE_B": "720",
    "DLQ_STATUS": "00", "STATE": "CA",
}  # fmt: skip
LEGACY_ACQ = {
    "LOAN_ID": "100007365142", "ORIG_CHN": "R", "Seller.Name": "JPMORGAN CHASE BANK, NA",
    "ORIG_RT": "8", "ORIG_AMT": "75000", "ORIG_TRM": "360", "ORIG_DTE": "12/1999",
    "FRST_DTE": "02/2000", "OLTV": "79", "NUM_BO": "1", "DTI": "62", "CSCORE_B": "763",
    "FTHB_FLG": "N", "PURPOSE": "R", "PROP_TYP": "SF", "NUM_UNIT": "1", "OCC_STAT": "P",
    "STATE": "PA", "ZIP_3": "173", "Product.Type": "FRM", "RELOCATION_FLG": "N",
}  # fmt: skip
LEGACY_PERF = {
    "LOAN_ID": "100007365142", "Monthly.Rpt.Prd": "01/01/2001", "Servicer.Name": "NULL",
    "LAST_RT": "8.0", "LAST_UPB": "74319.0", "Loan.Age": "12.0", "Months.To.Legal.Mat": "348.0",
    "Adj.Month.To.Mat": "347.0", "Maturity.Date": "01/2030", "MSA": "0.0", "Delq.Status": "0",
    "MOD_FLAG": "N", "Zero.Bal.Code": "NULL", "REPCH_FLAG": "NULL", "SERV_ACT_IND": "NULL",
}  # fmt: skip
FREDDIE_ORIG = {
    "Credit Score": "9999", "First Payment Date": "202103", "First Time Homebuyer Flag": "9",
    "Maturity Date": "205102", "MSA or Metropolitan Division": "",
    "Mortgage Insurance Percentage (MI %)": "000", "Number of Units": "01",
    "Occupancy Status": "P", "Original CLTV": "999", "Original DTI Ratio": "999",
    "Original UPB": "250000", "Original LTV": "080", "Original Interest Rate": "2.875",
    "Channel": "R",
    "Prepayment Penalty Mortgage (PPM) Flag": "N",
    "Amortization Type (formerly Product Type)": "FRM",
    "Property State": "TX", "Property Type": "SF", "Postal Code": "75000",
    "Loan Sequence Number": "F21Q10000001", "Loan Purpose": "N", "Original Loan Term": "360",
    "Number of Borrowers": "02", "Seller Name": "Other sellers", "Servicer Name": "Other servicers",
}  # fmt: skip
FREDDIE_SVCG = {
    "Loan Sequence Number": "F21Q10000001", "Monthly Reporting Period": "202106",
    "Current Actual UPB": "247000.00", "Current Loan Delinquency Status": "RA", "Loan Age": "3",
    "Remaining Months to Legal Maturity": "357", "Modification Flag": "P",
    "Current Interest Rate": "2.875",
    "Net Sale Proceeds": "C", "Borrower Assistance Status Code": "F",
}  # fmt: skip


def line(
    layout_file: str, values: dict[str, str], field_count: int | None = None, **more: str
) -> str:
    fields = load_layout(layout_file)[: field_count or None]
    row = {**values, **more}
    return "|".join(row.get(f.name, "") for f in fields)


def kind(format_name: str, name: str) -> FileKind:
    return next(k for k in file_kinds(format_name) if k.name == name)


@dataclass(frozen=True)
class Parsed:
    tables: dict[str, pa.Table]  # rows landing in each of the kind's tables
    quarantine: pa.Table
    rows_in: int


def parse_path(path: Path, file_kind: FileKind, **kw: int) -> Parsed:
    con = duckdb.connect()
    parsed = parse_files(
        con, [TextFile(path, "inbound/tape.txt", **kw)], file_kind, "S1", path.with_suffix(".pq")
    )
    tables = {
        t: con.sql(f"{landed_rows(file_kind, t)} ORDER BY _line_number").to_arrow_table()
        for t in file_kind.tables
    }
    quarantine = parsed.quarantine.to_arrow_table() if parsed.quarantine else pa.table({})
    return Parsed(tables, quarantine, sum(parsed.rows_in.values()))


def parse(tmp_path: Path, file_kind: FileKind, lines: list[str], **kw: int) -> Parsed:
    path = tmp_path / "tape.txt"
    path.write_text("\n".join(lines) + "\n")
    return parse_path(path, file_kind, **kw)


SFLP_KIND = kind("fannie_sflp", "combined")


def sflp(field_count: int = 108, **values: str) -> str:
    return line("fnma_sflp_combined.csv", SFLP, field_count, **values)


def test_sflp_lines_are_typed_by_the_contract(tmp_path: Path) -> None:
    batch = parse(tmp_path, SFLP_KIND, [sflp(), sflp(110, LOAN_ID="2"), sflp(113, LOAN_ID="3")])
    assert batch.quarantine.num_rows == 0
    row = batch.tables["loan_month"].to_pylist()[0]
    assert row["loan_id"] == "000000000001" and row["period"] == dt.date(2021, 3, 1)
    assert row["current_upb"] == pytest.approx(198765.43) and row["loan_age"] == 3
    assert (row["_snapshot_id"], row["_source_file"], row["_line_number"]) == (
        "S1",
        "inbound/tape.txt",
        1,
    )
    loan = batch.tables["loan"].to_pylist()[0]
    assert loan["fico"] == 720 and loan["first_pay_date"] == dt.date(2021, 1, 1)


def test_legacy_acquisition_and_performance(tmp_path: Path) -> None:
    acq = parse(tmp_path, kind("fannie_legacy", "acquisition"), [
        line("fnma_legacy_acquisition.csv", LEGACY_ACQ, 25) + "|200001",  # the sample's 26th field
    ])  # fmt: skip
    [loan] = acq.tables["loan"].to_pylist()
    assert loan["orig_date"] == dt.date(1999, 12, 1) and loan["first_pay_date"] == dt.date(
        2000, 2, 1
    )
    assert loan["orig_upb"] == 75000 and loan["seller"] == "JPMORGAN CHASE BANK, NA"
    assert set(acq.tables) == {"loan"}

    perf = parse(tmp_path, kind("fannie_legacy", "performance"), [
        line("fnma_legacy_performance.csv", LEGACY_PERF),
        line("fnma_legacy_performance.csv", LEGACY_PERF,
             **{"Monthly.Rpt.Prd": "02/01/2001", "Delq.Status": "-1"}),
        line("fnma_legacy_performance.csv", LEGACY_PERF, **{
            "Monthly.Rpt.Prd": "03/01/2001", "Delq.Status": "-2", "Zero.Bal.Code": "01",
            "ZB_DTE": "03/2001", "NS_PROCS": "C",
        }),
    ])  # fmt: skip
    rows = perf.tables["loan_month"].to_pylist()
    assert perf.quarantine.num_rows == 0
    assert [r["dlq_status"] for r in rows] == ["0", "XX", "XX"]  # -1/-2 are unknown, never current
    assert (
        rows[0]["loan_age"] == 12 and rows[0]["zero_balance_code"] is None
    )  # "12.0", literal NULL
    assert rows[2]["zero_balance_code"] == "01" and rows[2]["zero_balance_date"] == dt.date(
        2001, 3, 1
    )
    assert rows[2]["net_sales_proceeds"] is None  # C = covered, no amount
    assert rows[0]["forbearance_indicator"] is None  # not in this format: present, NULL


def test_freddie_sentinels_and_code_maps(tmp_path: Path) -> None:
    orig = parse(
        tmp_path, kind("freddie_sflld", "origination"), [line("fhlmc_sflld_orig.csv", FREDDIE_ORIG)]
    )
    [loan] = orig.tables["loan"].to_pylist()
    assert loan["fico"] is None and loan["dti"] is None and loan["ocltv"] is None  # 9999 / 999
    assert loan["first_time_buyer"] is None and loan["oltv"] == 80
    assert loan["purpose"] == "R"  # Freddie N (no-cash-out refi) is Fannie's R
    assert loan["zip3"] == "750" and loan["first_pay_date"] == dt.date(2021, 3, 1)

    svcg = parse(tmp_path, kind("freddie_sflld", "servicing"), [
        line("fhlmc_sflld_svcg.csv", FREDDIE_SVCG, 32),
        line("fhlmc_sflld_svcg.csv", FREDDIE_SVCG, 35, **{"Monthly Reporting Period": "202107"}),
    ])  # fmt: skip
    rows = svcg.tables["loan_month"].to_pylist()
    assert svcg.quarantine.num_rows == 0 and len(rows) == 2
    assert rows[0]["dlq_status"] == "RA" and rows[0]["mod_flag"] == "Y"  # P = prior-period mod
    assert rows[0]["net_sales_proceeds"] is None and rows[0]["forbearance_indicator"] == "F"


def test_generic_delimited_tape_with_a_column_mapping(tmp_path: Path) -> None:
    spec = DelimitedSpec(
        delimiter=",",
        date_format="%Y-%m-%d",
        null_tokens=["", "N/A"],
        columns={
            "Loan Number": "loan_id", "As Of": "period", "Note Rate": "orig_rate",
            "Original Balance": "orig_upb", "Term": "orig_term", "First Due": "first_pay_date",
            "Balance": "current_upb", "Delinquency": "dlq_status",
        },
        code_maps={"dlq_status": {"C": "00", "30": "01", "60": "02", "90+": "03"}},
    )  # fmt: skip
    header = "Loan Number,As Of,Note Rate,Original Balance,Term,First Due,Balance,Delinquency,Notes"
    file_kind = delimited_kind(spec, header.split(","))
    batch = parse(tmp_path, file_kind, [
        header,
        '"L-1",2024-01-01,6.5,300000,360,2023-11-01,298000.12,C,"ok"',
        "L-2,2024-01-01,7,250000,360,2023-12-01,N/A,60,",
        "L-3,01/2024,7,250000,360,2023-12-01,1,C,",
    ])  # fmt: skip
    rows = batch.tables["loan_month"].to_pylist()
    assert [r["loan_id"] for r in rows] == ["L-1", "L-2"]
    assert [r["dlq_status"] for r in rows] == ["00", "02"] and rows[1]["current_upb"] is None
    assert [r["_line_number"] for r in rows] == [2, 3]  # the header is line 1
    assert batch.rows_in == 3
    [bad] = batch.quarantine.to_pylist()
    assert bad["_line_number"] == 4 and "cannot read '01/2024' as DATE (%Y-%m-%d)" in bad["reason"]
    loans = batch.tables["loan"].to_pylist()
    assert loans[0]["as_of_period"] == dt.date(2024, 1, 1)  # taken from the mapped period


def test_bad_rows_are_quarantined_with_line_column_check_and_reason(tmp_path: Path) -> None:
    lines = [
        sflp(),
        sflp(ACT_PERIOD="132021"),  # month 13
        "|000000000003|032021|R",  # too few fields
        sflp(CSCORE_B="9999"),  # outside the contract's range
        sflp(CHANNEL="Z"),  # not an allowed value
        sflp(ORIG_UPB="12,000"),  # not a number
        sflp(LOAN_ID=""),  # required key missing
        "",  # empty line
        sflp(LOAN_AGE="3.0"),  # a whole number written as a float is fine
    ]
    batch = parse(tmp_path, SFLP_KIND, lines)
    assert batch.rows_in == 9
    assert batch.tables["loan_month"].num_rows + batch.quarantine.num_rows == batch.rows_in
    assert batch.tables["loan_month"].column("_line_number").to_pylist() == [1, 9]
    got = {r["_line_number"]: r for r in batch.quarantine.to_pylist()}
    assert (got[2]["column"], got[2]["check"]) == ("period", "unreadable")
    assert "cannot read '132021' as DATE (%m%Y)" in got[2]["reason"]
    assert (got[3]["check"], got[3]["reason"]) == (
        "field_count", "line has 4 fields; fannie_sflp combined (108/110/113 fields) expected",
    )  # fmt: skip
    assert (got[4]["column"], got[4]["check"]) == ("fico", "out_of_range")
    assert (got[5]["column"], got[5]["check"]) == ("channel", "not_allowed")
    assert (got[6]["column"], got[6]["check"]) == ("orig_upb", "unreadable")
    assert (got[7]["column"], got[7]["check"]) == ("loan_id", "missing")
    assert got[8]["reason"] == "empty line"
    assert got[3]["raw_line"] == "|000000000003|032021|R"


def test_a_cut_off_last_line_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "tape.txt"
    path.write_text(sflp() + "\n" + sflp(LOAN_ID="2")[:60])  # no final newline
    batch = parse_path(path, SFLP_KIND, truncated_line=2)
    [bad] = batch.quarantine.to_pylist()
    assert bad["_line_number"] == 2 and bad["reason"].startswith("truncated last line")


def test_config_text_is_data_not_sql_and_huge_numbers_are_quarantined(tmp_path: Path) -> None:
    spec = DelimitedSpec(
        date_format="%Y-%m-%d') || (SELECT 'x",  # a hostile format string stays a string
        null_tokens=[],
        columns={"Loan'; DROP": "loan_id", "As Of": "period", "Rate": "orig_rate",
                 "Amount": "orig_upb", "Term": "orig_term", "First": "first_pay_date"},
    )  # fmt: skip
    header = ["Loan'; DROP", "As Of", "Rate", "Amount", "Term", "First"]
    file_kind = delimited_kind(spec, header)
    batch = parse(
        tmp_path, file_kind, [",".join(header), "L1,2024-01-01,5,1,99999999999,2024-01-01"]
    )
    [bad] = batch.quarantine.to_pylist()
    assert bad["check"] == "unreadable"  # no date parses with that format; nothing ran as SQL
    assert "cannot read '2024-01-01' as DATE (%Y-%m-%d') || (SELECT 'x)" in bad["reason"]
    assert "orig_term (Term): cannot read '99999999999' as INTEGER" in bad["reason"]


def test_files_parsed_together_keep_their_own_line_numbers(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join([sflp(LOAN_ID="1"), sflp(LOAN_ID="2")]) + "\n")
    second.write_text("\n".join([sflp(LOAN_ID="3"), sflp(LOAN_ID="4", CHANNEL="Z")]) + "\n")
    con = duckdb.connect()
    files = [TextFile(first, "in/a.txt"), TextFile(second, "in/b.txt")]
    parsed = parse_files(con, files, SFLP_KIND, "S1", tmp_path / "parsed.parquet")
    assert parsed.rows_in == {"in/a.txt": 2, "in/b.txt": 2}
    landed = con.sql(f"{landed_rows(SFLP_KIND, 'loan_month')} ORDER BY loan_id").fetchall()
    assert [(r[0], r[-2], r[-1]) for r in landed] == [
        ("1", "in/a.txt", 1), ("2", "in/a.txt", 2), ("3", "in/b.txt", 1),
    ]  # fmt: skip
    assert parsed.quarantine is not None
    [bad] = parsed.quarantine.fetchall()
    assert bad[1:5] == ("in/b.txt", 2, "channel", "not_allowed")


def test_a_file_the_reader_cannot_split_names_the_delivered_file(tmp_path: Path) -> None:
    good, odd = tmp_path / "a.txt", tmp_path / "b.txt"
    good.write_text(sflp() + "\n")
    odd.write_text(sflp() + "\n" + sflp().replace("|", "\x1f", 1) + "\n")  # a unit separator
    with pytest.raises(TapeError, match=r"^in/b\.txt: cannot be read as text near line 2"):
        files = [TextFile(good, "in/a.txt"), TextFile(odd, "in/b.txt")]
        parse_files(duckdb.connect(), files, SFLP_KIND, "S1", tmp_path / "parsed.parquet")
