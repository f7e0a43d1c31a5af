"""Tests for the synthetic SFLP tape generator.

The generator feeds the demo and every pipeline test, so these tests pin down the layout
(what the parser will read) and the dynamics the gold metrics depend on: masked UPB,
level-payment amortisation, prepayments, delinquency roll-and-cure, liquidation losses.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from servicervault.generator import generate_tapes
from servicervault.layouts import sflp_fields

FIELDS = sflp_fields()
NAMES = [f.name for f in FIELDS]
LIQUIDATION_CODES = ["02", "03", "09", "15"]
LOSS_FIELDS = [
    "FORECLOSURE_COSTS",
    "PROPERTY_PRESERVATION_AND_REPAIR_COSTS",
    "ASSET_RECOVERY_COSTS",
    "MISCELLANEOUS_HOLDING_EXPENSES_AND_CREDITS",
    "ASSOCIATED_TAXES_FOR_HOLDING_PROPERTY",
    "NET_SALES_PROCEEDS",
    "CREDIT_ENHANCEMENT_PROCEEDS",
    "REPURCHASES_MAKE_WHOLE_PROCEEDS",
    "OTHER_FORECLOSURE_PROCEEDS",
]
COSTS = LOSS_FIELDS[:5]
PROCEEDS = LOSS_FIELDS[5:]
START, MONTHS = "2021-01", 36


def month_index(col: str) -> pl.Expr:
    """An MMYYYY column as a month count (year * 12 + month), so months can be subtracted."""
    return pl.col(col).str.slice(2, 4).cast(pl.Int64) * 12 + pl.col(col).str.slice(0, 2).cast(
        pl.Int64
    )


@pytest.fixture(scope="module")
def tape_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portfolio big enough to see every kind of event, generated once for the module."""
    out = tmp_path_factory.mktemp("tapes")
    generate_tapes(3000, MONTHS, out, start=START, seed=7)
    return out


@pytest.fixture(scope="module")
def tape(tape_dir: Path) -> pl.DataFrame:
    """All months as strings, plus numeric helpers: period (month index), age, upb, dlq."""
    raw = pl.read_csv(
        str(tape_dir / "*.txt"),
        has_header=False,
        separator="|",
        quote_char=None,
        new_columns=NAMES,
        infer_schema=False,
    )
    return raw.with_columns(
        period=month_index("ACT_PERIOD"),
        first_pay=month_index("FIRST_PAY"),
        age=pl.col("LOAN_AGE").cast(pl.Int64),
        upb=pl.col("CURRENT_UPB").cast(pl.Float64),
        dlq=pl.col("DLQ_STATUS").cast(pl.Int64, strict=False),
        active=pl.col("Zero_Bal_Code").is_null(),
    ).sort("LOAN_ID", "period")


def schedule_cents(orig_upb: str, rate: str, term: int, months: int) -> list[int]:
    """Balance after each of the first ``months`` level payments, as a servicer computes it:
    payment rounded to the cent, interest rounded to the cent every month."""
    r = float(rate) / 1200
    balance = round(float(orig_upb) * 100)
    payment = round(balance * r / (1 - (1 + r) ** -term))
    out = []
    for _ in range(months):
        balance -= min(balance, payment - round(balance * r))
        out.append(balance)
    return out


def closed_form_balance(orig_upb: float, rate: float, term: int, age: int) -> float:
    """Scheduled balance B(k) from PRODUCT.md, the fallback the gold layer uses for masked UPB."""
    r = rate / 1200
    return orig_upb * ((1 + r) ** term - (1 + r) ** age) / ((1 + r) ** term - 1)


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    first = generate_tapes(
        300, 4, tmp_path / "a", start="2023-11", seed=1, progress=lambda d, t: calls.append((d, t))
    )
    second = generate_tapes(300, 4, tmp_path / "b", start="2023-11", seed=1)
    other = generate_tapes(300, 4, tmp_path / "c", start="2023-11", seed=2)

    assert [p.name for p in first] == [
        "sflp_202311.txt",
        "sflp_202312.txt",
        "sflp_202401.txt",
        "sflp_202402.txt",
    ]
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert all(p.stat().st_size > 0 for p in first)
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]


def test_every_line_follows_the_layout(tape_dir: Path) -> None:
    patterns = {}
    for f in FIELDS:
        if f.is_date:
            patterns[f.name] = r"(0[1-9]|1[0-2])\d{4}"
        elif f.is_numeric:
            places = len(f.format.partition(".")[2])
            patterns[f.name] = r"-?\d+" + (rf"\.\d{{{places}}}" if places else "")
        else:
            width = int(f.format.strip("X()"))
            patterns[f.name] = rf"[^|\"]{{1,{width}}}"
    patterns["LOAN_ID"] = r"\d{12}"
    patterns["DLQ_STATUS"] = r"\d\d|XX"
    patterns["ZIP"] = r"\d{3}"
    compiled = {name: re.compile(p) for name, p in patterns.items()}

    files = sorted(tape_dir.glob("sflp_*.txt"))
    assert len(files) == MONTHS
    for path in files:
        period = path.stem[-2:] + path.stem[-6:-2]  # sflp_YYYYMM -> MMYYYY
        lines = path.read_text().splitlines()
        assert lines
        for line in lines:
            values = line.split("|")
            assert len(values) == 108, line
            assert line.startswith("|")
            row = dict(zip(NAMES, values, strict=True))
            assert row["ACT_PERIOD"] == period
            for name, value in row.items():
                if value:
                    assert compiled[name].fullmatch(value), (name, value)
            for name in ("LOAN_ID", "ORIG_RATE", "CURR_RATE", "ORIG_UPB", "CURRENT_UPB", "STATE"):
                assert row[name], name


def test_unused_crt_fields_are_empty_and_product_is_fixed_rate(tape: pl.DataFrame) -> None:
    for name in ("POOL_ID", "MASTER_SERVICER", "ISSUANCE_UPB", "DEAL_NAME", "ARM_INDEX"):
        assert tape[name].null_count() == tape.height, name
    assert set(tape["PRODUCT"]) == {"FRM"}
    assert set(tape["ORIG_TERM"]) == {"180", "240", "360"}


def test_ages_and_remaining_terms_are_consistent(tape: pl.DataFrame) -> None:
    assert (tape["age"] == tape["period"] - tape["first_pay"] + 1).all()
    rem = (tape["ORIG_TERM"].cast(pl.Int64) - tape["age"]).clip(lower_bound=0)
    assert (tape["REM_MONTHS"].cast(pl.Int64) == rem).all()
    assert (tape["ADJ_REM_MONTHS"].cast(pl.Int64) <= rem).all()

    first_rows = tape.group_by("LOAN_ID").agg(pl.col("period").first(), pl.col("age").first())
    window_start = first_rows["period"].min()
    seasoned = first_rows.filter(pl.col("age") > 1)
    new = first_rows.filter(pl.col("period") > window_start)
    assert (seasoned["period"] == window_start).all()
    assert len(seasoned) > 1000
    assert len(new) > 300
    assert (new["age"] == 1).all()  # a new loan first reports in its first payment month


def test_upb_is_masked_for_the_first_six_months(tape: pl.DataFrame) -> None:
    active = tape.filter("active")
    young = active.filter(pl.col("age") <= 6)
    older = active.filter(pl.col("age") > 6)
    assert len(young) > 1000
    assert (young["CURRENT_UPB"] == "0.00").all()
    assert (older["upb"] > 0).all()


def test_performing_loans_follow_the_level_payment_schedule(tape: pl.DataFrame) -> None:
    always_current = (
        tape.group_by("LOAN_ID")
        .agg(
            clean=((pl.col("DLQ_STATUS") == "00") & (pl.col("MOD_FLAG") == "N")).all(),
            rows=pl.struct("age", "upb", "active", "ORIG_UPB", "ORIG_RATE", "ORIG_TERM"),
        )
        .filter("clean")
    )
    on_schedule = off_schedule = 0
    for rows in always_current["rows"]:
        checked = [r for r in rows if r["active"] and r["age"] > 6]
        if not checked:
            continue
        first = checked[0]
        term = int(first["ORIG_TERM"])
        expected = schedule_cents(first["ORIG_UPB"], first["ORIG_RATE"], term, checked[-1]["age"])
        cents = [round(r["upb"] * 100) for r in checked]
        scheduled = [expected[r["age"] - 1] for r in checked]
        # Curtailments only ever take a balance below its schedule.
        assert all(c <= s for c, s in zip(cents, scheduled, strict=True))
        if cents == scheduled:
            on_schedule += 1
            for r in checked:
                b = closed_form_balance(float(r["ORIG_UPB"]), float(r["ORIG_RATE"]), term, r["age"])
                assert r["upb"] == pytest.approx(b, abs=5.0)
        else:
            off_schedule += 1
    assert on_schedule > 1000
    assert off_schedule > 10  # curtailments happen ...
    assert off_schedule < on_schedule / 2  # ... but are occasional (1% of loans a month)


def test_missed_payments_leave_the_balance_unchanged(tape: pl.DataFrame) -> None:
    pairs = tape.with_columns(
        prev_upb=pl.col("upb").shift().over("LOAN_ID"),
        prev_dlq=pl.col("dlq").shift().over("LOAN_ID"),
    ).filter(pl.col("active") & (pl.col("age") > 7) & (pl.col("dlq") == pl.col("prev_dlq") + 1))
    assert len(pairs) > 100
    assert (pairs["upb"] == pairs["prev_upb"]).all()


def test_delinquency_rolls_and_cures(tape: pl.DataFrame) -> None:
    statuses = set(tape["DLQ_STATUS"])
    assert {"00", "01", "02", "03", "04"} <= statuses
    assert "XX" in statuses
    unknown_share = (tape["DLQ_STATUS"] == "XX").mean()
    assert 0 < unknown_share < 0.005

    moves = tape.with_columns(
        prev=pl.col("dlq").shift().over("LOAN_ID"),
        prev_mod=pl.col("MOD_FLAG").shift().over("LOAN_ID"),
    )
    cures = moves.filter((pl.col("prev") >= 1) & (pl.col("dlq") == 0) & (pl.col("prev_mod") == "N"))
    cures = cures.filter(pl.col("MOD_FLAG") == "N")  # cured by paying, not by a modification
    assert len(cures) > 50
    assert moves.filter((pl.col("prev") == 1) & (pl.col("dlq") == 2)).height > 20
    assert moves.filter((pl.col("prev") == 2) & (pl.col("dlq") == 3)).height > 10


def test_forbearance_and_modifications(tape: pl.DataFrame) -> None:
    forborne = tape.filter(pl.col("FORBEARANCE_INDICATOR") == "F")
    assert len(forborne) > 0
    assert (forborne["DLQ_STATUS"] != "00").all()
    assert set(tape["FORBEARANCE_INDICATOR"]) == {"F", "N"}

    flags = tape.group_by("LOAN_ID").agg("MOD_FLAG", "CURR_RATE", "dlq").drop("LOAN_ID")
    modified = 0
    for mod_flags, rates, dlq in flags.iter_rows():
        if "Y" not in mod_flags:
            assert len(set(rates)) == 1  # fixed-rate loans keep their rate unless modified
            continue
        modified += 1
        start = mod_flags.index("Y")
        assert set(mod_flags[start:]) == {"Y"}  # once modified, always modified
        assert dlq[start] in (0, None)  # a modification brings the loan current
        if start > 0:
            assert float(rates[start]) < float(rates[start - 1])  # at a lower rate
    assert modified > 10


def test_loans_report_every_month_until_they_leave(tape: pl.DataFrame) -> None:
    per_loan = tape.group_by("LOAN_ID").agg("period", "Zero_Bal_Code").drop("LOAN_ID")
    last_period = tape["period"].max()
    for periods, codes in per_loan.iter_rows():
        assert periods == list(range(periods[0], periods[0] + len(periods)))
        assert all(c is None for c in codes[:-1])  # a terminated loan never appears again
        if codes[-1] is None:
            assert periods[-1] == last_period


def test_prepayments(tape: pl.DataFrame) -> None:
    prepaid = tape.filter(pl.col("Zero_Bal_Code") == "01")
    assert len(prepaid) > 200
    assert (prepaid["LAST_UPB"].cast(pl.Float64) > 0).all()
    assert (prepaid["CURRENT_UPB"] == "0.00").all()
    assert (prepaid["ZB_DTE"] == prepaid["ACT_PERIOD"]).all()
    assert (prepaid["DLQ_STATUS"] == "00").all()
    assert {"06", "96"} & set(tape["Zero_Bal_Code"].drop_nulls())


def test_prepayments_respond_to_the_rate_incentive(tape: pl.DataFrame) -> None:
    current = tape.filter(pl.col("DLQ_STATUS") == "00", pl.col("age") > 30).with_columns(
        high_rate=pl.col("CURR_RATE").cast(pl.Float64)
        > pl.col("CURR_RATE").cast(pl.Float64).median().over("period")
    )
    speed = current.group_by("high_rate").agg(pl.col("Zero_Bal_Code").eq_missing("01").mean())
    by_rate = dict(speed.iter_rows())
    assert by_rate[True] > 1.5 * by_rate[False]


def test_liquidations_carry_loss_fields(tape: pl.DataFrame) -> None:
    liquidated = tape.filter(pl.col("Zero_Bal_Code").is_in(LIQUIDATION_CODES))
    assert len(liquidated) > 20
    assert set(liquidated["Zero_Bal_Code"]) >= {"02", "09"}
    for name in [*LOSS_FIELDS, "LAST_UPB", "LAST_PAID_INSTALLMENT_DATE", "DISPOSITION_DATE"]:
        assert liquidated[name].null_count() == 0, name
    assert (liquidated["CURRENT_UPB"] == "0.00").all()
    assert (liquidated["ZB_DTE"] == liquidated["ACT_PERIOD"]).all()
    assert (liquidated["dlq"] >= 4).all()  # only seriously delinquent loans liquidate
    foreclosed = liquidated.filter(pl.col("Zero_Bal_Code").is_in(["02", "09"]))
    assert foreclosed["FORECLOSURE_DATE"].null_count() == 0

    others = tape.filter(~pl.col("Zero_Bal_Code").is_in(LIQUIDATION_CODES).fill_null(False))
    for name in LOSS_FIELDS:
        assert others[name].null_count() == others.height, name

    # Severity as PRODUCT.md defines it.
    money = {name: pl.col(name).cast(pl.Float64) for name in [*LOSS_FIELDS, "LAST_UPB"]}
    months = month_index("DISPOSITION_DATE") - month_index("LAST_PAID_INSTALLMENT_DATE")
    carrying = (
        months * (pl.col("CURR_RATE").cast(pl.Float64) / 100 - 0.0035) / 12 * money["LAST_UPB"]
    )
    net_loss = (
        money["LAST_UPB"]
        + pl.sum_horizontal(money[c] for c in COSTS)
        + carrying
        - pl.sum_horizontal(money[c] for c in PROCEEDS)
    )
    severity = liquidated.select(net_loss / money["LAST_UPB"]).to_series()
    assert 0.10 <= severity.median() <= 0.50
    assert severity.min() > -0.2  # a make-whole payment can turn a small loss into a gain
    assert severity.max() < 0.75


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loans": 0}, "loans"),
        ({"months": 0}, "months"),
        ({"start": "2021-13"}, "YYYY-MM"),
        ({"start": "202101"}, "YYYY-MM"),
        ({"start": "Jan 2021"}, "YYYY-MM"),
    ],
)
def test_invalid_arguments_are_rejected(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"loans": 10, "months": 2, "out_dir": tmp_path} | kwargs
    with pytest.raises(ValueError, match=message):
        generate_tapes(**args)
    assert not list(tmp_path.iterdir())  # nothing written
