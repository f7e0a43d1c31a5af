"""Synthetic servicing tapes in Fannie Mae's SFLP combined layout.

Why this exists: the demo, the tests and every engineer's Codespace need realistic tapes
without shipping real loan-level data. The tapes exercise what the pipeline has to get right
on real files: the 108-field pipe layout with a leading empty field, ``MMYYYY`` dates, string
delinquency statuses including ``XX``, UPB masked to 0.00 during the first six months of life,
loans that enter the tape during the window, prepayments driven by the rate incentive,
delinquency roll-and-cure cycles, forbearance, modifications, liquidations with the loss
fields that loss severity needs, and other removals.

Design choices:

* Field positions and formats come from :mod:`servicervault.layouts`, the same file the
  parser reads, so writer and reader cannot drift apart. Each month is built as a mapping
  field name -> Arrow array and ordered by the layout; fields left out are written empty.
* The simulation is vectorised over loans and streams over months: per-loan state lives in
  a handful of NumPy arrays, each month's file is written with Arrow's CSV writer and then
  dropped, so memory depends on the number of loans, not on the number of months.
* Balances are integer cents and interest is rounded to the cent each month, as a servicing
  system does, so a loan that always pays on time follows its level-payment schedule to the
  cent and tests can recompute it independently.
* Everything is drawn from one ``numpy.random.Generator(PCG64(seed))`` in a fixed order, so
  the same arguments give byte-identical files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from servicervault.layouts import Field, sflp_fields

# --- Portfolio mix at origination -------------------------------------------------------
# Categorical attributes: label -> share of loans. The order of the labels fixes the codes.
_MIX: dict[str, dict[str, float]] = {
    "CHANNEL": {"R": 0.50, "C": 0.35, "B": 0.15},
    "SELLER": {
        "Harborview Mortgage, LLC": 0.22,
        "Summit Ridge Home Loans, Inc.": 0.18,
        "Prairie State Bank, N.A.": 0.15,
        "Bluewater Lending Corp.": 0.12,
        "Keystone Residential Funding": 0.08,
        "Other": 0.25,
    },
    "SERVICER": {
        "Cedar Point Loan Servicing, LLC": 0.80,
        "Harborview Mortgage, LLC": 0.12,
        "Prairie State Bank, N.A.": 0.08,
    },
    "PURPOSE": {"P": 0.55, "R": 0.25, "C": 0.20},
    "PROP": {"SF": 0.65, "PU": 0.25, "CO": 0.08, "MH": 0.01, "CP": 0.01},
    "OCC_STAT": {"P": 0.90, "S": 0.04, "I": 0.06},
    "MI_TYPE": {"1": 0.85, "2": 0.15},
    "HOMEREADY_PROGRAM_INDICATOR": {"7": 0.93, "H": 0.07},
    "PROPERTY_INSPECTION_WAIVER_INDICATOR": {"A": 0.80, "W": 0.15, "P": 0.05},
}

# Property state -> (share of loans, first and last 3-digit ZIP prefix, main MSA codes).
_STATES: dict[str, tuple[float, int, int, tuple[int, ...]]] = {
    "CA": (11.8, 900, 961, (31080, 41860, 40140, 41740)),
    "TX": (8.9, 750, 799, (19100, 26420, 12420, 41700)),
    "FL": (6.7, 320, 349, (33100, 45300, 36740, 27260)),
    "NY": (5.9, 100, 149, (35620, 15380, 40380)),
    "PA": (3.9, 150, 196, (37980, 38300)),
    "IL": (3.8, 600, 629, (16980,)),
    "OH": (3.5, 430, 458, (18140, 17460, 17140)),
    "GA": (3.3, 300, 319, (12060,)),
    "NC": (3.2, 270, 289, (16740, 39580)),
    "MI": (3.0, 480, 499, (19820, 24340)),
    "NJ": (2.8, 70, 89, (35620, 37980)),
    "VA": (2.6, 220, 246, (47900, 47260, 40060)),
    "WA": (2.4, 980, 994, (42660, 44060)),
    "AZ": (2.2, 850, 865, (38060, 46060)),
    "MA": (2.1, 10, 27, (14460, 49340)),
    "TN": (2.1, 370, 385, (34980, 32820)),
    "IN": (2.0, 460, 479, (26900,)),
    "MO": (1.8, 630, 658, (41180, 28140)),
    "MD": (1.8, 206, 219, (12580, 47900)),
    "WI": (1.8, 530, 549, (33340, 31540)),
    "CO": (1.7, 800, 816, (19740, 17820)),
    "MN": (1.7, 550, 567, (33460,)),
    "SC": (1.6, 290, 299, (16700, 17900, 24860)),
    "AL": (1.5, 350, 369, (13820,)),
    "LA": (1.4, 700, 714, (35380, 12940)),
    "KY": (1.4, 400, 427, (31140,)),
    "OR": (1.3, 970, 979, (38900,)),
    "OK": (1.2, 730, 749, (36420, 46140)),
    "CT": (1.1, 60, 69, (25540, 14860)),
    "UT": (1.0, 840, 847, (41620,)),
    "IA": (1.0, 500, 528, (19780,)),
    "NV": (0.95, 889, 898, (29820, 39900)),
    "AR": (0.9, 716, 729, (30780,)),
    "MS": (0.9, 386, 397, (27140,)),
    "KS": (0.9, 660, 679, (48620,)),
    "NM": (0.6, 870, 884, (10740,)),
    "NE": (0.6, 680, 693, (36540,)),
    "ID": (0.6, 832, 838, (14260,)),
    "WV": (0.5, 247, 268, (16620,)),
    "HI": (0.4, 967, 968, (46520,)),
    "NH": (0.4, 30, 38, (31700,)),
    "ME": (0.4, 39, 49, (38860,)),
    "MT": (0.3, 590, 599, (13740,)),
    "RI": (0.3, 28, 29, (39300,)),
    "DE": (0.3, 197, 199, (37980,)),
    "SD": (0.3, 570, 577, (43620,)),
    "ND": (0.2, 580, 588, (22020,)),
    "AK": (0.2, 995, 999, (11260,)),
    "DC": (0.2, 200, 205, (47900,)),
    "VT": (0.2, 50, 59, (15540,)),
    "WY": (0.2, 820, 831, (16940,)),
}
_RURAL_SHARE = 0.08  # loans outside any MSA (MSA "00000")

_TERMS = {360: 0.85, 240: 0.05, 180: 0.10}
_SHORT_TERM_RATE_DISCOUNT = 0.5  # 15/20-year loans price below 30-year ones
_CONFORMING_LIMIT = 647_200.0  # above it a loan is flagged high-balance

# --- Origination timing and rates --------------------------------------------------------
_SEASONED_SHARE = 0.7  # loans already reporting when the window opens; the rest start inside it
_MEAN_SEASONING = 36  # months, for seasoned loans (recent vintages dominate a live book)
_MAX_SEASONING = 120
_MARKET_LONG_RUN = 5.0  # market mortgage rate the random walk reverts to, percent
_MARKET_REVERSION = 0.03  # pull towards the long-run level per month
_MARKET_VOL = 0.15  # monthly standard deviation of the market rate, percent points
_MARKET_BOUNDS = (2.5, 9.0)
_MIN_RATE = 2.0

# --- Monthly performance model -----------------------------------------------------------
# Prepayment: CPR = (turnover + refinancing S-curve in the rate incentive) x seasoning ramp.
_CPR_TURNOVER = 0.05
_CPR_REFI_MAX = 0.40
_REFI_MIDPOINT = 0.75  # incentive (loan rate - market rate, percent) at half the refi speed
_REFI_WIDTH = 0.25
_RAMP_MONTHS = 30
_CURTAIL_PROB = 0.01  # monthly chance a paying loan sends extra principal
_CURTAIL_PAYMENTS = (1.0, 12.0)  # size of a curtailment in monthly payments, uniform
# Current -> 30 days: base monthly rate for a 740 FICO, 36 DTI borrower, scaled by credit.
_ROLL_BASE = 0.005
_REDEFAULT_MULTIPLIER = 3.0  # modified loans roll more often
# Delinquent loans, by months delinquent 1, 2, 3+: P(cure to current), P(one payment
# better), P(no change), P(one more missed payment). A loan makes d_before - d_after + 1
# payments in a month, so delinquent loans do not amortise and cures catch up.
_DLQ_TRANSITIONS = np.array(
    [
        [0.45, 0.00, 0.15, 0.40],
        [0.20, 0.10, 0.15, 0.55],
        [0.05, 0.05, 0.05, 0.85],
    ]
)
_FORBEARANCE_PROB = 0.20  # newly delinquent loans granted forbearance
_MOD_PROB = 0.03  # monthly, loans 60+ days delinquent
_MOD_PROB_FORBORNE = 0.10  # monthly, delinquent loans in forbearance
_MOD_RATE_CUT = (1.0, 3.0)  # percent points, uniform
_LIQUIDATION_MIN_DLQ = 4  # months delinquent before foreclosure can complete
_LIQUIDATION_PROB = 0.12  # monthly, once eligible and not in forbearance
_LIQUIDATION_CODES = {"02": 0.25, "03": 0.20, "09": 0.50, "15": 0.05}
_REPURCHASE_PROB = 0.0002  # monthly "06"
_REMOVAL_PROB = 0.0001  # monthly "96"
_UNKNOWN_STATUS_PROB = 0.001  # rows reported with status "XX"
_MASKED_AGE = 6  # CURRENT_UPB is published as 0.00 while LOAN_AGE <= this

# Liquidation expenses and other recoveries as a share of UPB at removal: uniform (low, high).
_LOSS_SHARES = {
    "FORECLOSURE_COSTS": (0.015, 0.040),
    "PROPERTY_PRESERVATION_AND_REPAIR_COSTS": (0.005, 0.030),
    "ASSET_RECOVERY_COSTS": (0.001, 0.005),
    "MISCELLANEOUS_HOLDING_EXPENSES_AND_CREDITS": (-0.002, 0.010),
    "ASSOCIATED_TAXES_FOR_HOLDING_PROPERTY": (0.005, 0.020),
    "OTHER_FORECLOSURE_PROCEEDS": (0.0, 0.01),
}
# Distressed sale price as a share of the value at origination (OLTV gives the value), and
# the cap on net sale proceeds as a share of UPB: any surplus would go to the borrower.
_SALE_TO_ORIGINAL_VALUE = (0.45, 0.75)
_MAX_SALE_SHARE = 0.95
_MI_CLAIM_PAID = (0.6, 1.0)  # share of the MI coverage actually recovered
_MAKE_WHOLE_PROB = 0.05  # liquidations where the seller pays a make-whole
_MAKE_WHOLE_SHARE = (0.05, 0.15)

# Zero-balance codes in code order; "01" also covers loans paid off at maturity.
_ZB_CODES = ("01", "02", "03", "06", "09", "15", "96")
_PREPAID, _REPURCHASED, _REMOVED = (_ZB_CODES.index(c) for c in ("01", "06", "96"))
_LIQUIDATION_ZB = np.array([_ZB_CODES.index(c) for c in _LIQUIDATION_CODES])
_YES_NO = ("N", "Y")
_MAX_DLQ_LABEL = 99

# Vocabulary of every categorical field: the written label of each integer code.
_VOCAB: dict[str, tuple[str, ...]] = {
    **{name: tuple(mix) for name, mix in _MIX.items()},
    **{
        flag: _YES_NO
        for flag in (
            "FIRST_FLAG",
            "PPMT_FLG",
            "IO",
            "MOD_FLAG",
            "SERV_IND",
            "RELOCATION_MORTGAGE_INDICATOR",
            "HIGH_BALANCE_LOAN_INDICATOR",
            "HIGH_LOAN_TO_VALUE_HLTV_REFINANCE_OPTION_INDICATOR",
            "RE_PROCS_FLAG",
        )
    },
    "STATE": tuple(_STATES),
    "PRODUCT": ("FRM",),
    "ADR_TYPE": ("7",),  # not applicable
    "FORBEARANCE_INDICATOR": ("N", "F"),
    "DLQ_STATUS": (*(f"{d:02d}" for d in range(_MAX_DLQ_LABEL + 1)), "XX"),
    "Zero_Bal_Code": _ZB_CODES,
}
_UNKNOWN_STATUS = _VOCAB["DLQ_STATUS"].index("XX")

Progress = Callable[[int, int], None]


def generate_tapes(
    loans: int,
    months: int,
    out_dir: Path,
    start: str = "2021-01",
    seed: int = 42,
    progress: Progress | None = None,
) -> list[Path]:
    """Write ``months`` monthly SFLP tapes for a book of ``loans`` loans; return their paths.

    Files are named ``sflp_YYYYMM.txt`` (one reporting month each, oldest first) so a
    servicer-style inbound folder can be replayed month by month. ``progress(done, total)``
    is called after each file so a CLI can show progress on long runs.
    """
    first = _parse_start(start)
    if loans < 1:
        raise ValueError(f"loans must be at least 1, got {loans}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    fields = sflp_fields()
    by_name = {f.name: f for f in fields}
    rng = np.random.Generator(np.random.PCG64(seed))
    market_base = first - _MAX_SEASONING - 2  # earliest possible origination month
    market = _market_rates(rng, market_base, first + months - 1)
    book = _originate(rng, loans, first, months, market, market_base, by_name)

    out_dir.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(include_header=False, delimiter="|", quoting_style="none")
    paths = []
    for done, period in enumerate(range(first, first + months), start=1):
        columns = _report_month(book, rng, period, market[period - market_base], by_name)
        count = len(columns["LOAN_ID"])
        table = pa.table(
            [columns.get(f.name, pa.nulls(count, pa.string())) for f in fields],
            names=[f.name for f in fields],
        )
        path = out_dir / f"sflp_{period // 12:04d}{period % 12 + 1:02d}.txt"
        pacsv.write_csv(table, path, options)
        paths.append(path)
        if progress is not None:
            progress(done, months)
    return paths


def _parse_start(start: str) -> int:
    """Turn ``YYYY-MM`` into a month index (year * 12 + month - 1), the unit of all dates here."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", start)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"start must be a month as YYYY-MM, got {start!r}")
    return int(match[1]) * 12 + int(match[2]) - 1


@dataclass
class _Book:
    """Every loan of the portfolio: static terms, pre-formatted static columns, live state.

    Arrays are indexed by loan (in LOAN_ID order). Balances and payments are integer cents;
    rates are percent. ``balance`` is the true balance even while the tape masks it.
    """

    first_pay: np.ndarray
    term: np.ndarray
    fico: np.ndarray
    dti: np.ndarray
    oltv: np.ndarray
    mi_pct: np.ndarray
    static_columns: dict[str, pa.Array]
    balance: np.ndarray
    rate: np.ndarray
    payment: np.ndarray
    dlq: np.ndarray
    forborne: np.ndarray
    modified: np.ndarray
    active: np.ndarray


def _market_rates(rng: np.random.Generator, first: int, last: int) -> np.ndarray:
    """Monthly market mortgage rate from month ``first`` to ``last``: a mean-reverting walk.

    It prices loans at origination and sets the refinancing incentive of every loan later.
    """
    shocks = rng.normal(0.0, _MARKET_VOL, last - first + 1)
    rates = np.empty_like(shocks)
    level = _MARKET_LONG_RUN
    for i, shock in enumerate(shocks):
        level = float(
            np.clip(level + _MARKET_REVERSION * (_MARKET_LONG_RUN - level) + shock, *_MARKET_BOUNDS)
        )
        rates[i] = level
    return rates


def _originate(
    rng: np.random.Generator,
    n: int,
    first: int,
    months: int,
    market: np.ndarray,
    market_base: int,
    by_name: dict[str, Field],
) -> _Book:
    """Draw the static terms of ``n`` loans and their state when the window opens.

    Seasoned loans enter at their scheduled balance, performing; the others start reporting
    at their first payment date inside the window, masked UPB and all.
    """
    seasoned = rng.random(n) < _SEASONED_SHARE
    seasoning = 1 + np.minimum(
        rng.exponential(_MEAN_SEASONING, n).astype(np.int64), _MAX_SEASONING - 1
    )
    first_pay = np.where(seasoned, first - seasoning, first + rng.integers(0, months, n))
    orig_date = first_pay - rng.integers(1, 3, n)
    term = rng.choice(np.array(list(_TERMS)), n, p=_shares(_TERMS))
    spread = rng.normal(0.35, 0.30, n) - np.where(term < 360, _SHORT_TERM_RATE_DISCOUNT, 0.0)
    rate = _note_rate(market[orig_date - market_base] + spread)
    orig_upb = np.clip(np.round(rng.lognormal(np.log(250_000), 0.5, n), -3), 30_000, 1_089_000)

    oltv = np.where(
        rng.random(n) < 0.25, 80, np.clip(np.rint(rng.normal(75, 15, n)), 15, 97)
    ).astype(np.int64)
    ocltv = np.minimum(oltv + np.where(rng.random(n) < 0.10, rng.integers(1, 16, n), 0), 105)
    num_bo = rng.choice(np.array([1, 2, 3]), n, p=[0.50, 0.48, 0.02])
    fico = np.clip(np.rint(rng.normal(750, 45, n)), 620, 832).astype(np.int64)
    co_fico = np.clip(fico + np.rint(rng.normal(0, 30, n)), 620, 832).astype(np.int64)
    dti = np.clip(np.rint(rng.normal(36, 9, n)), 5, 50).astype(np.int64)
    codes = {name: rng.choice(len(mix), n, p=_shares(mix)) for name, mix in _MIX.items()}
    purchase = codes["PURPOSE"] == _VOCAB["PURPOSE"].index("P")
    first_time = purchase & (rng.random(n) < 0.35)  # first-time buyers only buy
    units = rng.choice(np.array([1, 2, 3, 4]), n, p=[0.97, 0.02, 0.005, 0.005])
    mi_pct = _mi_coverage(oltv, rng)
    state, zip3, msa = _locations(rng, n)
    loan_id = np.sort(10**11 + rng.choice(9 * 10**11, n, replace=False))

    static = {
        "LOAN_ID": (loan_id, None),
        "ORIG_RATE": (rate, None),
        "ORIG_UPB": (orig_upb, None),
        "ORIG_TERM": (term, None),
        "ORIG_DATE": (orig_date, None),
        "FIRST_PAY": (first_pay, None),
        "MATR_DT": (first_pay + term - 1, None),
        "OLTV": (oltv, None),
        "OCLTV": (ocltv, None),
        "NUM_BO": (num_bo, None),
        "DTI": (dti, None),
        "CSCORE_B": (fico, None),
        "CSCORE_C": (co_fico, num_bo > 1),
        "FIRST_FLAG": (first_time.astype(np.int64), None),
        "NO_UNITS": (units, None),
        "STATE": (state, None),
        "MSA": (msa, None),
        "ZIP": (zip3, None),
        "MI_PCT": (mi_pct, mi_pct > 0),
        "MI_TYPE": (codes.pop("MI_TYPE"), mi_pct > 0),
        "HIGH_BALANCE_LOAN_INDICATOR": ((orig_upb > _CONFORMING_LIMIT).astype(np.int64), None),
        **{name: (code, None) for name, code in codes.items()},
        **{
            name: (np.zeros(n, np.int64), None)
            for name in (
                "PRODUCT",
                "PPMT_FLG",
                "IO",
                "SERV_IND",
                "RELOCATION_MORTGAGE_INDICATOR",
                "HIGH_LOAN_TO_VALUE_HLTV_REFINANCE_OPTION_INDICATOR",
                "ADR_TYPE",
            )
        },
    }
    balance = np.rint(orig_upb * 100).astype(np.int64)
    payment = _level_payment(balance, rate, term)
    balance = _amortise(balance, rate, payment, np.maximum(first - first_pay, 0))
    return _Book(
        first_pay=first_pay,
        term=term,
        fico=fico,
        dti=dti,
        oltv=oltv,
        mi_pct=mi_pct,
        static_columns={
            name: _to_arrow(by_name[name], values, valid)
            for name, (values, valid) in static.items()
        },
        balance=balance,
        rate=rate,
        payment=payment,
        dlq=np.zeros(n, np.int64),
        forborne=np.zeros(n, bool),
        modified=np.zeros(n, bool),
        active=np.ones(n, bool),
    )


def _note_rate(rate: np.ndarray) -> np.ndarray:
    """Round to the 1/8 percent grid note rates are quoted on, with a floor."""
    return np.maximum(_MIN_RATE, np.round(rate * 8) / 8)


def _shares(mix: dict) -> np.ndarray:
    """Normalised probabilities of a label -> weight mix, in label order."""
    weights = np.array(list(mix.values()), dtype=float)
    return weights / weights.sum()


def _mi_coverage(oltv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mortgage-insurance coverage percent: required above 80 LTV, deeper for higher LTV."""
    standard = np.select([oltv <= 80, oltv <= 85, oltv <= 90, oltv <= 95], [0, 12, 25, 30], 35)
    reduced = np.select([oltv <= 80, oltv <= 85, oltv <= 90, oltv <= 95], [0, 6, 12, 25], 30)
    return np.where(rng.random(len(oltv)) < 0.8, standard, reduced).astype(float)


def _locations(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """State codes weighted like the US mortgage market, with a ZIP3 and MSA inside the state."""
    table = list(_STATES.values())
    state = rng.choice(len(table), n, p=_shares({s: w for s, (w, *_) in _STATES.items()}))
    low = np.array([lo for _, lo, _, _ in table])[state]
    high = np.array([hi for _, _, hi, _ in table])[state]
    zip3 = low + (rng.random(n) * (high - low + 1)).astype(np.int64)
    width = max(len(msas) for *_, msas in table)
    msa_table = np.array([msas + msas[-1:] * (width - len(msas)) for *_, msas in table])
    msa_count = np.array([len(msas) for *_, msas in table])[state]
    msa = msa_table[state, (rng.random(n) * msa_count).astype(np.int64)]
    return state, zip3, np.where(rng.random(n) < _RURAL_SHARE, 0, msa)


def _level_payment(balance: np.ndarray, rate: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Monthly principal and interest, in cents, that pays ``balance`` off in ``months``."""
    r = rate / 1200
    return np.rint(balance * r / (1 - (1 + r) ** -months)).astype(np.int64)


def _amortise(
    balance: np.ndarray, rate: np.ndarray, payment: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Apply ``count`` monthly payments to each balance (cents), interest rounded to the cent."""
    balance = balance.copy()
    r = rate / 1200
    for k in range(int(count.max(initial=0))):
        due = count > k
        interest = np.rint(balance[due] * r[due]).astype(np.int64)
        balance[due] -= np.minimum(balance[due], payment[due] - interest)
    return balance


def _prepay_smm(incentive: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Single monthly mortality of full payoffs: turnover plus an S-curve in rate incentive."""
    refi = _CPR_REFI_MAX / (1 + np.exp(-(incentive - _REFI_MIDPOINT) / _REFI_WIDTH))
    cpr = (_CPR_TURNOVER + refi) * np.minimum(1.0, age / _RAMP_MONTHS)
    return 1 - (1 - cpr) ** (1 / 12)


def _report_month(
    book: _Book,
    rng: np.random.Generator,
    period: int,
    market_rate: float,
    by_name: dict[str, Field],
) -> dict[str, pa.Array]:
    """Advance every reporting loan by one month, update the book, return the month's columns.

    A loan reports from its first payment month until (and including) the month it leaves
    the book; the leaving row carries the zero-balance code and CURRENT_UPB 0.
    """
    rows = np.flatnonzero(book.active & (book.first_pay <= period))
    n = len(rows)
    age = period - book.first_pay[rows] + 1
    term = book.term[rows]
    bal0 = book.balance[rows]
    d0 = book.dlq[rows]
    rate = book.rate[rows].copy()
    payment = book.payment[rows].copy()
    forborne = book.forborne[rows]
    modified = book.modified[rows].copy()
    u = rng.random((10, n))

    # Loans leaving the book this month (before any payment: LAST_UPB is the prior balance).
    zb = np.full(n, -1)
    zb[(d0 == 0) & (u[0] < _prepay_smm(rate - market_rate, age))] = _PREPAID
    liquidated = (d0 >= _LIQUIDATION_MIN_DLQ) & ~forborne & (u[1] < _LIQUIDATION_PROB)
    zb[liquidated] = rng.choice(
        _LIQUIDATION_ZB, int(liquidated.sum()), p=_shares(_LIQUIDATION_CODES)
    )
    zb[(zb < 0) & (u[2] < _REPURCHASE_PROB)] = _REPURCHASED
    zb[(zb < 0) & (u[2] > 1 - _REMOVAL_PROB)] = _REMOVED
    stays = zb < 0

    # Delinquency: credit-driven roll from current, transition table once delinquent.
    roll = _ROLL_BASE * np.exp((740 - book.fico[rows]) / 60) * book.dti[rows] / 36
    roll = np.where(modified, roll * _REDEFAULT_MULTIPLIER, roll)
    cumulative = np.cumsum(_DLQ_TRANSITIONS, axis=1)[np.clip(d0, 1, 3) - 1]
    move = (u[3][:, None] >= cumulative[:, :3]).sum(axis=1)
    d1 = np.select([move == 0, move == 1, move == 2], [0, d0 - 1, d0], d0 + 1)
    d1 = np.where(d0 == 0, (u[3] < roll).astype(np.int64), d1)
    d1 = np.where(liquidated, d0 + 1, np.where(stays, d1, d0))

    # Modification: brings the loan current at a lower rate, re-amortised to maturity.
    mod_prob = np.where(forborne & (d0 >= 1), _MOD_PROB_FORBORNE, np.where(d0 >= 2, _MOD_PROB, 0))
    mod = stays & (u[4] < mod_prob)
    d1[mod] = 0
    modified |= mod
    rate[mod] = _note_rate(rate[mod] - _uniform(u[5][mod], _MOD_RATE_CUT))
    payment[mod] = _level_payment(bal0[mod], rate[mod], np.maximum(term[mod] - age[mod], 1))
    forborne = np.where(
        d1 == 0, False, forborne | ((d0 == 0) & (d1 == 1) & (u[6] < _FORBEARANCE_PROB))
    )

    # Payments: d0 - d1 + 1 instalments (none when modified or leaving), then curtailments.
    count = np.where(stays & ~mod, d0 - d1 + 1, 0)
    bal = _amortise(bal0, rate, payment, count)
    curtail = stays & (d1 == 0) & (count > 0) & (u[7] < _CURTAIL_PROB)
    extra = np.minimum(
        bal[curtail] // 2, payment[curtail] * _uniform(u[8][curtail], _CURTAIL_PAYMENTS)
    )
    bal[curtail] -= (np.round(extra / 10_000) * 10_000).astype(np.int64)  # whole $100
    matured = stays & ((bal == 0) | ((age >= term) & (d1 == 0)))
    zb[matured] = _PREPAID
    leaves = zb >= 0
    bal[leaves] = 0

    book.balance[rows] = bal
    book.dlq[rows] = d1
    book.rate[rows] = rate
    book.payment[rows] = payment
    book.forborne[rows] = forborne
    book.modified[rows] = modified
    book.active[rows] = ~leaves

    status = np.minimum(d1, _MAX_DLQ_LABEL)
    status[~leaves & (u[9] < _UNKNOWN_STATUS_PROB)] = _UNKNOWN_STATUS
    rem = np.maximum(term - age, 0)
    reported = ~leaves & (age > _MASKED_AGE)
    columns = {
        "ACT_PERIOD": (np.full(n, period), None),
        "CURR_RATE": (rate, None),
        "CURRENT_UPB": (np.where(reported, bal, 0) / 100, None),
        "LOAN_AGE": (age, None),
        "REM_MONTHS": (rem, None),
        "ADJ_REM_MONTHS": (_months_to_payoff(bal, rate, payment, rem), None),
        "DLQ_STATUS": (status, None),
        "MOD_FLAG": (modified.astype(np.int64), None),
        "Zero_Bal_Code": (zb, leaves),
        "ZB_DTE": (np.full(n, period), leaves),
        "LAST_UPB": (bal0 / 100, leaves),
        "TOT_SCHD_PRNCPL": ((bal0 - bal) / 100, reported & (age > _MASKED_AGE + 1)),
        "FORBEARANCE_INDICATOR": (forborne.astype(np.int64), None),
    }
    columns |= _liquidation_columns(
        rng, liquidated, zb, d1, bal0, book.oltv[rows], book.mi_pct[rows], period
    )
    static = {name: array.take(rows) for name, array in book.static_columns.items()}
    return static | {
        name: _to_arrow(by_name[name], v, valid) for name, (v, valid) in columns.items()
    }


def _uniform(u: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Map uniforms on [0, 1) onto [low, high)."""
    low, high = bounds
    return low + (high - low) * u


def _months_to_payoff(
    balance: np.ndarray, rate: np.ndarray, payment: np.ndarray, cap: np.ndarray
) -> np.ndarray:
    """Payments left at the current payment (curtailments shorten it), capped at legal maturity."""
    r = rate / 1200
    ratio = 1 - balance * r / payment
    safe = np.where(ratio > 0, ratio, 1.0)
    months = np.where(ratio > 0, np.ceil(-np.log(safe) / np.log1p(r)), cap)
    return np.minimum(months, cap).astype(np.int64)


def _liquidation_columns(
    rng: np.random.Generator,
    liquidated: np.ndarray,
    zb: np.ndarray,
    dlq: np.ndarray,
    upb_cents: np.ndarray,
    oltv: np.ndarray,
    mi_pct: np.ndarray,
    period: int,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Credit-event dates and the loss fields, filled on liquidation rows only.

    Costs are shares of UPB at removal; the sale price follows the property value at
    origination, so high-LTV loans recover less and their mortgage insurance makes up part of
    it. With carrying interest from the last paid instalment, severities land mostly between
    10% and 50%.
    """
    n, k = len(liquidated), int(liquidated.sum())
    upb = upb_cents[liquidated] / 100

    def spread(values: np.ndarray) -> np.ndarray:
        out = np.zeros(n, dtype=values.dtype)
        out[liquidated] = values
        return out

    columns = {
        name: (spread(upb * _uniform(rng.random(k), bounds)), liquidated)
        for name, bounds in _LOSS_SHARES.items()
    }
    value = upb_cents[liquidated] / oltv[liquidated]  # dollars: cents / 100 * 100 / OLTV
    sale = np.minimum(
        value * _uniform(rng.random(k), _SALE_TO_ORIGINAL_VALUE), _MAX_SALE_SHARE * upb
    )
    mi_claim = upb * mi_pct[liquidated] / 100 * _uniform(rng.random(k), _MI_CLAIM_PAID)
    make_whole = np.where(
        rng.random(k) < _MAKE_WHOLE_PROB, upb * _uniform(rng.random(k), _MAKE_WHOLE_SHARE), 0.0
    )
    last_paid = period - dlq
    code = np.array(_ZB_CODES)[np.maximum(zb, 0)]
    # REO dispositions foreclosed some months before the sale; third-party sales at it.
    foreclosed = period - np.where(code == "09", np.minimum(rng.integers(1, 7, n), dlq - 1), 0)
    return columns | {
        "NET_SALES_PROCEEDS": (spread(sale), liquidated),
        "CREDIT_ENHANCEMENT_PROCEEDS": (spread(mi_claim), liquidated),
        "REPURCHASES_MAKE_WHOLE_PROCEEDS": (spread(make_whole), liquidated),
        "RE_PROCS_FLAG": (spread((make_whole > 0).astype(np.int64)), zb >= 0),
        "LAST_PAID_INSTALLMENT_DATE": (last_paid, liquidated),
        "FORECLOSURE_DATE": (foreclosed, liquidated & np.isin(code, ("02", "09"))),
        "DISPOSITION_DATE": (np.full(n, period), liquidated),
    }


def _to_arrow(field: Field, values: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """Render one column as the layout formats it; rows where ``valid`` is False are empty.

    Dates are month indices written ``MMYYYY``; ``9(n)`` integers plain; ``9(n).99..``
    decimals with that many places; categorical fields are integer codes into ``_VOCAB``;
    other text fields (LOAN_ID, MSA, ZIP) are integers zero-padded to the field width.
    """
    mask = None if valid is None else ~valid
    if field.is_date:
        month = pa.array(values % 12 + 1, mask=mask).cast(pa.string())
        year = pa.array(values // 12).cast(pa.string())
        return pc.binary_join_element_wise(pc.utf8_lpad(month, width=2, padding="0"), year, "")
    if field.is_numeric:
        places = len(field.format.partition(".")[2])
        if places == 0:
            return pa.array(np.asarray(values, np.int64), mask=mask)
        return pa.array(np.asarray(values, float), mask=mask).cast(pa.decimal128(18, places))
    if field.name in _VOCAB:
        return pa.array(_VOCAB[field.name]).take(pa.array(np.asarray(values, np.int64), mask=mask))
    width = int(field.format.strip("X()"))
    text = pa.array(np.asarray(values, np.int64), mask=mask).cast(pa.string())
    return pc.utf8_lpad(text, width=width, padding="0")
