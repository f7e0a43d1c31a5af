"""End to end: tapes in a tenant's bucket -> `vault run` -> gold tables, analytics DB and drop.

Two tenants share one VAULT_HOME for the whole module, so the pipeline runs once per tenant:

* ``acme``: a generated portfolio (400 loans x 24 months). Its gold tables are recomputed here
  from the raw tape text, independently of the project's SQL, straight from PRODUCT.md
  ("Metric definitions"), and compared to the cent.
* ``handmade``: eight loans x 3 months written field by field from the layout CSV, whose gold
  numbers are worked out by hand in the comments below.

The published database and the drops are read directly from disk (duckdb read-only, pyarrow),
not through the project's code. The idempotence test runs last because it delivers a new month.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from servicervault.cli import app
from servicervault.generator import generate_tapes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LAYOUT_CSV = ROOT / "pipelines" / "servicing_tape" / "layouts" / "fnma_sflp_combined.csv"
INBOUND = "inbound/servicing_tape/"
SOURCE = "servicing_tape"
STAGES = ("extract", "transform", "validate", "publish", "drop")

GEN_TENANT, GEN_LOANS, GEN_MONTHS, GEN_SEED, GEN_START = "acme", 400, 24, 20240611, "2021-01"
HAND_TENANT = "handmade"

ACTIVE_STATUSES = ("current", "dpd30", "dpd60", "dpd90p")


# --- Layout and tape reading (from the layout CSV, not from the project's code) -------------


def layout_positions() -> dict[str, int]:
    """Field name -> 1-based position in the 108-field SFLP combined layout."""
    with LAYOUT_CSV.open(newline="") as fh:
        return {r["lppub_name"]: int(r["position"]) for r in csv.DictReader(fh)}


SFLP_FIELDS = 108


def mmyyyy(text: str) -> dt.date:
    return dt.date(int(text[2:]), int(text[:2]), 1)


def months_between(start: dt.date, end: dt.date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


def prev_month(d: dt.date) -> dt.date:
    return dt.date(d.year - 1, 12, 1) if d.month == 1 else dt.date(d.year, d.month - 1, 1)


def _num(text: str) -> float | None:
    return float(text) if text else None


def read_tape_rows(paths: list[Path]) -> list[dict]:
    """The fields the gold metrics need, one dict per line, in delivery order."""
    pos = layout_positions()
    rows = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            f = line.split("|")
            assert len(f) == SFLP_FIELDS, f"{path.name}:{number} has {len(f)} fields"

            def get(name: str, f: list[str] = f) -> str:
                return f[pos[name] - 1]

            rows.append(
                {
                    "loan_id": get("LOAN_ID"),
                    "period": mmyyyy(get("ACT_PERIOD")),
                    "orig_rate": float(get("ORIG_RATE")),
                    "curr_rate": _num(get("CURR_RATE")),
                    "orig_upb": float(get("ORIG_UPB")),
                    "current_upb": _num(get("CURRENT_UPB")),
                    "orig_term": int(get("ORIG_TERM")),
                    "first_pay": mmyyyy(get("FIRST_PAY")),
                    "loan_age": int(get("LOAN_AGE")) if get("LOAN_AGE") else None,
                    "dlq": get("DLQ_STATUS") or None,
                    "zb_code": get("Zero_Bal_Code") or None,
                    "last_upb": _num(get("LAST_UPB")),
                }
            )
    return rows


# --- Independent implementation of PRODUCT.md "Metric definitions" --------------------------


def status_of(zb_code: str | None, dlq: str | None) -> str:
    if zb_code is not None:
        if zb_code == "01":
            return "prepaid"
        if zb_code in ("02", "03", "09", "15"):
            return "defaulted"
        return "other_removal"
    if dlq is None or not dlq.isdigit():
        return "unknown"
    d = int(dlq)
    return ACTIVE_STATUSES[min(d, 3)]


def scheduled_balance(orig_upb: float, orig_rate: float, term: int, age: int) -> float:
    """B(k) = P((1+r)^n - (1+r)^k) / ((1+r)^n - 1)."""
    r = orig_rate / 1200
    return orig_upb * ((1 + r) ** term - (1 + r) ** age) / ((1 + r) ** term - 1)


def measure(tape_rows: list[dict]) -> dict[tuple[str, dt.date], dict]:
    """Per (loan, period): status, active, age and upb. A loan-period delivered twice keeps
    the last delivered row."""
    out: dict[tuple[str, dt.date], dict] = {}
    for raw in tape_rows:
        r = dict(raw)
        r["status"] = status_of(r["zb_code"], r["dlq"])
        r["active"] = r["zb_code"] is None
        r["months_delinquent"] = int(r["dlq"]) if r["dlq"] and r["dlq"].isdigit() else None
        age = r["loan_age"]
        if age is None:  # missing loan age: months from the first payment date + 1
            age = months_between(r["first_pay"], r["period"]) + 1
        r["age"] = age
        if not r["active"]:
            r["upb"] = r["last_upb"]  # UPB at removal
        elif r["current_upb"] == 0:  # masked: the scheduled balance
            r["upb"] = scheduled_balance(r["orig_upb"], r["orig_rate"], r["orig_term"], age)
        else:
            r["upb"] = r["current_upb"]
        out[(r["loan_id"], r["period"])] = r
    return out


def expected_gold(tape_rows: list[dict]) -> dict[str, pl.DataFrame]:
    months = measure(tape_rows)
    by_period: dict[dt.date, list[dict]] = defaultdict(list)
    for r in months.values():
        by_period[r["period"]].append(r)

    portfolio = []
    rolls: dict[tuple[dt.date, str, str], list[float]] = defaultdict(list)
    for p in sorted(by_period):
        rows = by_period[p]
        rec: dict = {"period": p}
        active = [r for r in rows if r["active"]]
        rec["active_loans"] = len(active)
        rec["active_upb"] = sum(r["upb"] for r in active)
        for s in (*ACTIVE_STATUSES, "unknown", "prepaid", "defaulted"):
            rec[f"{s}_loans"] = sum(1 for r in rows if r["status"] == s)
            rec[f"{s}_upb"] = sum(r["upb"] for r in rows if r["status"] == s)
        del rec["unknown_upb"]
        dq_loans = sum(rec[f"{s}_loans"] for s in ACTIVE_STATUSES[1:])
        dq_upb = sum(rec[f"{s}_upb"] for s in ACTIVE_STATUSES[1:])
        known = rec["active_loans"] - rec["unknown_loans"]
        rec["dq30p_rate_count"] = dq_loans / known if known else None
        rec["dq30p_rate_upb"] = dq_upb / rec["active_upb"] if rec["active_upb"] else None

        # Loan pairs: active at p-1 (the calendar month before) with a row at p.
        unscheduled = base = defaulted_prev = 0.0
        pairs = 0
        for r in rows:
            q = months.get((r["loan_id"], prev_month(p)))
            if q is None:
                continue
            if q["status"] in ACTIVE_STATUSES:
                rolls[(p, q["status"], r["status"])].append(q["upb"])
            if not q["active"]:
                continue
            pairs += 1
            rate = (q["curr_rate"] if q["curr_rate"] is not None else q["orig_rate"]) / 1200
            m = max(1, q["orig_term"] - q["age"])
            sched = q["upb"] * rate / ((1 + rate) ** m - 1)
            base += q["upb"] - sched
            if r["status"] == "prepaid":
                unscheduled += q["upb"] - sched
            elif r["active"]:
                unscheduled += max(0.0, q["upb"] - sched - r["upb"])
            if r["status"] == "defaulted":
                defaulted_prev += q["upb"]
        smm = unscheduled / base if pairs and base else None
        mdr = defaulted_prev / base if pairs and base else None
        rec["smm"] = smm
        rec["cpr"] = None if smm is None else 1 - (1 - smm) ** 12
        rec["mdr"] = mdr
        rec["cdr"] = None if mdr is None else 1 - (1 - mdr) ** 12
        portfolio.append(rec)

    totals: dict[tuple[dt.date, str], list[float]] = defaultdict(list)
    for (p, frm, _), upbs in rolls.items():
        totals[(p, frm)].extend(upbs)
    roll_rows = []
    for (p, frm, to), upbs in rolls.items():
        all_upbs = totals[(p, frm)]
        roll_rows.append(
            {
                "period": p,
                "from_status": frm,
                "to_status": to,
                "loans": len(upbs),
                "upb": sum(upbs),
                "rate_count": len(upbs) / len(all_upbs),
                "rate_upb": sum(upbs) / sum(all_upbs) if sum(all_upbs) else None,
            }
        )

    latest: dict[str, dict] = {}
    for r in sorted(months.values(), key=lambda r: r["period"]):
        latest[r["loan_id"]] = r
    snapshot = [
        {
            "loan_id": r["loan_id"],
            "period": r["period"],
            "status": r["status"],
            "is_active": r["active"],
            "upb": r["upb"],
            "current_upb": r["current_upb"],
            "loan_age": r["age"],
            "months_delinquent": r["months_delinquent"],
            "zero_balance_code": r["zb_code"],
            "orig_rate": r["orig_rate"],
            "orig_upb": r["orig_upb"],
            "orig_term": r["orig_term"],
            "first_pay_date": r["first_pay"],
        }
        for r in latest.values()
    ]
    return {
        "portfolio_monthly": pl.DataFrame(portfolio, infer_schema_length=None),
        "roll_rates": pl.DataFrame(roll_rows, infer_schema_length=None),
        "loan_snapshot": pl.DataFrame(snapshot, infer_schema_length=None),
    }


# --- Comparison -----------------------------------------------------------------------------

KEYS = {
    "portfolio_monthly": ["period"],
    "roll_rates": ["period", "from_status", "to_status"],
    "loan_snapshot": ["loan_id"],
}
MONEY = {"active_upb", "prepaid_upb", "defaulted_upb", "upb", "current_upb", "orig_upb"} | {
    f"{s}_upb" for s in ACTIVE_STATUSES
}
RATES = {"dq30p_rate_count", "dq30p_rate_upb", "smm", "cpr", "mdr", "cdr"}
RATES |= {"rate_count", "rate_upb", "orig_rate"}


def same(column: str, expected: object, actual: object) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if column in MONEY:  # to the cent
        return abs(round(float(expected), 2) - float(actual)) <= 0.005 + 1e-9
    if column in RATES:
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12)
    return expected == actual  # counts, statuses, dates, flags: exact


def assert_matches(table: str, expected: pl.DataFrame, published: pl.DataFrame) -> None:
    keys = KEYS[table]
    exp = {tuple(r[k] for k in keys): r for r in expected.iter_rows(named=True)}
    pub = {tuple(r[k] for k in keys): r for r in published.iter_rows(named=True)}
    assert sorted(pub) == sorted(exp), (
        f"gold.{table}: keys differ; missing {sorted(set(exp) - set(pub))[:5]}, "
        f"unexpected {sorted(set(pub) - set(exp))[:5]}"
    )
    problems = [
        f"{key} {col}: expected {want!r}, published {row[col]!r}"
        for key, row in sorted(pub.items())
        for col, want in exp[key].items()
        if col not in keys and not same(col, want, row[col])
    ]
    assert not problems, f"gold.{table}: {len(problems)} mismatches:\n" + "\n".join(problems[:20])


# --- Harness: one VAULT_HOME for the module, tenants, delivery, CLI runs ---------------------


@dataclass
class Env:
    root: Path
    home: Path
    tenants: Path

    def bucket(self, tenant: str) -> Path:
        return self.home / "buckets" / tenant

    def analytics(self, tenant: str) -> Path:
        return self.home / "tenants" / tenant / "analytics.duckdb"

    def ledger(self, tenant: str) -> list[dict]:
        path = self.home / "tenants" / tenant / "runs.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def add_tenant(self, tenant: str) -> None:
        (self.tenants / f"{tenant}.yaml").write_text(
            f"id: {tenant}\n"
            f"name: {tenant.title()} Servicing\n"
            "storage:\n"
            f"  bucket: file://${{VAULT_HOME}}/buckets/{tenant}\n"
            "sources:\n"
            f"  - name: {SOURCE}\n"
            "    layout: fannie_sflp\n"
            f"    inbound: {INBOUND}\n"
        )

    def deliver(self, tenant: str, tapes: list[Path]) -> None:
        """What a servicer's upload does: files appear under the inbound prefix."""
        inbound = self.bucket(tenant) / INBOUND
        inbound.mkdir(parents=True, exist_ok=True)
        for tape in tapes:
            shutil.copyfile(tape, inbound / tape.name)

    def delivered(self, tenant: str) -> list[Path]:
        return sorted((self.bucket(tenant) / INBOUND).glob("*.txt"))

    def snapshot_manifests(self, tenant: str) -> list[dict]:
        paths = sorted((self.bucket(tenant) / "snapshots" / SOURCE).glob("*/manifest.json"))
        return [json.loads(p.read_text()) for p in paths]

    def drop_manifests(self, tenant: str) -> list[Path]:
        return sorted((self.bucket(tenant) / "drops").glob("*/manifest.json"))

    def published(self, tenant: str, sql: str) -> pl.DataFrame:
        con = duckdb.connect(str(self.analytics(tenant)), read_only=True)
        try:
            return con.sql(sql).pl()
        finally:
            con.close()

    def gold(self, tenant: str) -> dict[str, pl.DataFrame]:
        return {t: self.published(tenant, f"SELECT * FROM gold.{t}") for t in KEYS}


@dataclass
class StageLine:
    stage: str
    status: str
    rows: int
    message: str


SUMMARY = re.compile(
    r"^(extract|transform|validate|publish|drop)\s+(\S+)\s+([\d,]+)\s+[\d.]+\s+(.*)$"
)


def vault_run(tenant: str) -> dict[str, StageLine]:
    """`vault run --tenant T` in-process; returns the per-stage summary it printed."""
    result = CliRunner().invoke(app, ["run", "--tenant", tenant])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    lines = {}
    for line in result.stdout.splitlines():
        if m := SUMMARY.match(line):
            lines[m[1]] = StageLine(m[1], m[2], int(m[3].replace(",", "")), m[4])
    assert list(lines) == list(STAGES), result.stdout
    assert all(s.status == "ok" for s in lines.values()), result.stdout
    return lines


def line_count(paths: list[Path]) -> int:
    return sum(len(p.read_text().splitlines()) for p in paths)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("e2e")
    e = Env(root=root, home=root / "vault", tenants=root / "tenants")
    e.tenants.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAULT_HOME", str(e.home))
        mp.setenv("VAULT_TENANTS_DIR", str(e.tenants))
        # The transform stage setdefault()s this; pin it so nothing leaks past the module.
        mp.setenv("SQLMESH_HOME", str(e.home / "sqlmesh"))
        yield e


@dataclass
class GeneratedRun:
    delivered: list[Path]
    held_back: Path  # the 25th month, delivered by the idempotence test
    summary: dict[str, StageLine]
    # State right after the first run (the idempotence test changes it later):
    gold: dict[str, pl.DataFrame]
    snapshots: list[dict]
    drops: list[Path]


@pytest.fixture(scope="module")
def generated(env: Env) -> GeneratedRun:
    tapes = generate_tapes(
        GEN_LOANS, GEN_MONTHS + 1, env.root / "tapes", start=GEN_START, seed=GEN_SEED
    )
    env.add_tenant(GEN_TENANT)
    env.deliver(GEN_TENANT, tapes[:GEN_MONTHS])
    summary = vault_run(GEN_TENANT)
    return GeneratedRun(
        delivered=tapes[:GEN_MONTHS],
        held_back=tapes[GEN_MONTHS],
        summary=summary,
        gold=env.gold(GEN_TENANT),
        snapshots=env.snapshot_manifests(GEN_TENANT),
        drops=env.drop_manifests(GEN_TENANT),
    )


# --- Test 1: generated portfolio, gold recomputed independently -----------------------------


def test_generated_portfolio_end_to_end(env: Env, generated: GeneratedRun) -> None:
    s = generated.summary
    rows_in = line_count(generated.delivered)
    (snapshot,) = generated.snapshots
    assert s["extract"].rows == rows_in
    assert s["extract"].message == (
        f"landed {rows_in:,} rows (0 quarantined) as snapshot {snapshot['snapshot_id']}"
    )
    assert s["transform"].rows == rows_in  # one silver loan-month per tape line
    assert re.fullmatch(
        rf"build [0-9a-f]{{16}}: {rows_in:,} loan-months from 1 snapshot\(s\), \d+ tables, "
        "every period rebuilt",
        s["transform"].message,
    )
    assert s["validate"].message == f"{s['validate'].rows} expectations passed"
    assert s["validate"].rows > 0
    first_validation = next(r for r in env.ledger(GEN_TENANT) if r["stage"] == "validate")
    assert first_validation["details"]["checked_from"] is None  # every period
    assert first_validation["details"]["loan_months_checked"] == rows_in
    assert s["publish"].message.startswith("published ")
    assert s["publish"].message.endswith(f"to {env.analytics(GEN_TENANT)}")
    (drop_manifest,) = generated.drops
    assert s["drop"].message == f"wrote drops/{drop_manifest.parent.name}/manifest.json"

    expected = expected_gold(read_tape_rows(generated.delivered))
    # The generated book exercises every rule: masked UPB, XX, prepayments, defaults, removals.
    pm = expected["portfolio_monthly"]
    assert pm.height == GEN_MONTHS
    assert pm["prepaid_loans"].sum() > 0 and pm["defaulted_loans"].sum() > 0
    assert pm["unknown_loans"].sum() > 0 and pm["dpd90p_loans"].sum() > 0
    assert (pm["mdr"].fill_null(0) > 0).any()
    for table, frame in expected.items():
        assert_matches(table, frame, generated.gold[table])


# --- Test 2: a tiny hand-made tape, gold numbers worked out by hand --------------------------
#
# Eight loans, periods P1 = 2022-01, P2 = 2022-02, P3 = 2022-03, one file per month.
# Unless said otherwise: original term 360, original and current rate 6.000% (r = 0.005),
# first payment 01-2021, so loan age is 13, 14, 15 in P1, P2, P3.
#
#   L1 HAND00000001  current throughout: 190,000.00 -> 189,800.00 -> 189,600.00
#   L2 HAND00000002  current 150,000.00 -> 149,850.00, prepays in P3 (code 01,
#                    UPB at removal 149,700.00)
#   L3 HAND00000003  dlq 03 -> 04 at 120,000.00, REO disposition in P3 (code 09,
#                    UPB at removal 119,950.00)
#   L4 HAND00000004  new: orig 300,000.00, first payment 11-2021, UPB masked (0.00) every
#                    month; loan age 3, missing in P2 (-> 11-2021..02-2022 = 3 months + 1 = 4), 5
#   L5 HAND00000005  current 100,000.00, misses P2 (dlq 01, 100,000.00), cures in P3 with a
#                    curtailment: 95,000.00
#   L6 HAND00000006  original rate 7.200%, current rate 6.000% in P1/P3 but missing in P2;
#                    80,000.00 current -> 80,000.00 XX (unknown) -> 79,900.00 current
#   L7 HAND00000007  90,000.00 dlq 01 -> dlq 02, repurchased in P3 (code 06 other_removal,
#                    UPB at removal 90,000.00)
#   L8 HAND00000008  first reported in P3: first payment 03-2022, loan age missing (-> 1),
#                    250,000.00 current
#
# Masked balances, B(k) = 300,000 ((1.005)^360 - (1.005)^k) / ((1.005)^360 - 1),
# (1.005)^360 = 6.022575212263...:
#   B(3) = 299,099.558034   B(4) = 298,796.404248   B(5) = 298,491.734694
#
# Active UPB:
#   P1 = 190,000 + 150,000 + 120,000 + 299,099.558034 + 100,000 + 80,000 + 90,000
#      = 1,029,099.558034 -> 1,029,099.56      (7 loans)
#   P2 = 189,800 + 149,850 + 120,000 + 298,796.404248 + 100,000 + 80,000 + 90,000
#      = 1,028,446.404248 -> 1,028,446.40      (7 loans)
#   P3 = 189,600 + 298,491.734694 + 95,000 + 79,900 + 250,000
#      = 912,991.734694 -> 912,991.73          (5 loans: L1 L4 L5 L6 L8, all current)
# By status:
#   P1 current L1 L2 L4 L5 L6 = 819,099.558034; dpd30 L7 90,000; dpd90p L3 120,000
#   P2 current L1 L2 L4 = 638,446.404248; dpd30 L5 100,000; dpd60 L7 90,000;
#      dpd90p L3 120,000; unknown L6 (1 loan)
#   P3 prepaid L2 149,700.00 (UPB at removal); defaulted L3 119,950.00 (UPB at removal)
# 30+ delinquency:
#   P1 count 2/7 = 0.285714285714; upb 210,000 / 1,029,099.558034 = 0.204061889212397
#   P2 count 3/(7 - 1 unknown) = 0.5; upb 310,000 / 1,028,446.404248 = 0.301425527591345
#   P3 0 and 0
#
# SMM etc. for P2 (pairs: the 7 loans of P1): no loan prepays or defaults, and no active loan
# paid more than its scheduled principal: L1 paid 200.00 < 190,000 x 0.005/((1.005)^347 - 1)
# = 204.54; L2 paid 150.00 < 161.48; L3 L5 L6 L7 paid nothing; L4 (masked) pays exactly
# B(3) - B(4), which is its scheduled principal. So SMM = CPR = MDR = CDR = 0.
# P1 has no pairs: SMM, CPR, MDR, CDR are null.
#
# SMM for P3. Pairs: L1..L7 (active in P2, with a row in P3); L8 has no P2 row.
# m = 360 - 14 = 346 for the seasoned loans; (1.005)^346 = 5.616391426915,
#   c = 0.005 / 4.616391426915 = 0.001083097063834
# L6 falls back to its original rate in P2: r = 0.006, (1.006)^346 = 7.923212960808,
#   c6 = 0.006 / 6.923212960808 = 0.000866649637093
# L4: m = 360 - 4 = 356, sched = B(4) x 0.005 / ((1.005)^356 - 1) = 304.669554 = B(4) - B(5)
#        upb(P2)          sched        upb(P2)-sched    unscheduled
#   L1 189,800.00    205.571823   189,594.428177   max(0, 200 - 205.57)        = 0
#   L2 149,850.00    162.302095   149,687.697905   prepaid: 149,687.697905
#   L3 120,000.00    129.971648   119,870.028352   defaulted: 0
#   L4 298,796.404248 304.669554  298,491.734694   max(0, B(4) - sched - B(5)) = 0
#   L5 100,000.00    108.309706    99,891.690294   max(0, 100,000 - 108.31 - 95,000) = 4,891.690294
#   L6  80,000.00     69.331971    79,930.668029   max(0, 80,000 - 69.33 - 79,900)   = 30.668029
#   L7  90,000.00     97.478736    89,902.521264   other removal: 0
#   denominator = 1,027,368.768716; unscheduled = 154,610.056228
#   SMM = 154,610.056228 / 1,027,368.768716 = 0.150491294786884
#   CPR = 1 - (1 - SMM)^12 = 0.858741690958131
#   MDR = 120,000 (L3's P2 upb) / 1,027,368.768716 = 0.116803239162126
#   CDR = 1 - (1 - MDR)^12 = 0.774737130976833
#
# Roll rates (loans with status current/dpd30/dpd60/dpd90p at p-1; L6's XX is left out in P3):
#   P2 current -> current  L1 L2 L4  3/5   190,000 + 150,000 + 299,099.558034 = 639,099.56
#                                         / 819,099.558034 = 0.780246493561661
#      current -> dpd30    L5        1/5   100,000 / 819,099.558034 = 0.122085281354633
#      current -> unknown  L6        1/5    80,000 / 819,099.558034 = 0.097668225083706
#      dpd30 -> dpd60 L7 (90,000), dpd90p -> dpd90p L3 (120,000): 1 and 1
#   P3 current -> current  L1 L4     2/3   189,800 + 298,796.404248 = 488,596.40
#                                         / 638,446.404248 = 0.765289617103561
#      current -> prepaid  L2        1/3   149,850 / 638,446.404248 = 0.234710382896439
#      dpd30 -> current L5 (100,000), dpd60 -> other_removal L7 (90,000),
#      dpd90p -> defaulted L3 (120,000): 1 and 1

P1, P2, P3 = dt.date(2022, 1, 1), dt.date(2022, 2, 1), dt.date(2022, 3, 1)

_STATIC = {
    "CHANNEL": "R",
    "SELLER": "Handmade Bank, N.A.",
    "SERVICER": "Handmade Servicing, LLC",
    "ORIG_TERM": "360",
    "OLTV": "80",
    "OCLTV": "80",
    "NUM_BO": "1",
    "DTI": "35",
    "CSCORE_B": "740",
    "FIRST_FLAG": "N",
    "PURPOSE": "P",
    "PROP": "SF",
    "NO_UNITS": "1",
    "OCC_STAT": "P",
    "STATE": "OH",
    "MSA": "18140",
    "ZIP": "432",
    "PRODUCT": "FRM",
    "MOD_FLAG": "N",
    "FORBEARANCE_INDICATOR": "N",
}

# loan -> (orig rate, orig upb, first payment, orig date)
_LOANS = {
    "HAND00000001": ("6.000", "200000.00", "012021", "122020"),
    "HAND00000002": ("6.000", "160000.00", "012021", "122020"),
    "HAND00000003": ("6.000", "125000.00", "012021", "122020"),
    "HAND00000004": ("6.000", "300000.00", "112021", "102021"),
    "HAND00000005": ("6.000", "105000.00", "012021", "122020"),
    "HAND00000006": ("7.200", "85000.00", "012021", "122020"),
    "HAND00000007": ("6.000", "95000.00", "012021", "122020"),
    "HAND00000008": ("6.000", "250000.00", "032022", "022022"),
}

# (loan, period) -> current rate, current UPB, loan age, dlq status, zb code, UPB at removal
_MONTHS = {
    "012022": [
        ("HAND00000001", "6.000", "190000.00", "13", "00", "", ""),
        ("HAND00000002", "6.000", "150000.00", "13", "00", "", ""),
        ("HAND00000003", "6.000", "120000.00", "13", "03", "", ""),
        ("HAND00000004", "6.000", "0.00", "3", "00", "", ""),
        ("HAND00000005", "6.000", "100000.00", "13", "00", "", ""),
        ("HAND00000006", "6.000", "80000.00", "13", "00", "", ""),
        ("HAND00000007", "6.000", "90000.00", "13", "01", "", ""),
    ],
    "022022": [
        ("HAND00000001", "6.000", "189800.00", "14", "00", "", ""),
        ("HAND00000002", "6.000", "149850.00", "14", "00", "", ""),
        ("HAND00000003", "6.000", "120000.00", "14", "04", "", ""),
        ("HAND00000004", "6.000", "0.00", "", "00", "", ""),
        ("HAND00000005", "6.000", "100000.00", "14", "01", "", ""),
        ("HAND00000006", "", "80000.00", "14", "XX", "", ""),
        ("HAND00000007", "6.000", "90000.00", "14", "02", "", ""),
    ],
    "032022": [
        ("HAND00000001", "6.000", "189600.00", "15", "00", "", ""),
        ("HAND00000002", "6.000", "0.00", "15", "00", "01", "149700.00"),
        ("HAND00000003", "6.000", "0.00", "15", "05", "09", "119950.00"),
        ("HAND00000004", "6.000", "0.00", "5", "00", "", ""),
        ("HAND00000005", "6.000", "95000.00", "15", "00", "", ""),
        ("HAND00000006", "6.000", "79900.00", "15", "00", "", ""),
        ("HAND00000007", "6.000", "0.00", "15", "02", "06", "90000.00"),
        ("HAND00000008", "6.000", "250000.00", "", "00", "", ""),
    ],
}


def sflp_line(values: dict[str, str]) -> str:
    """One 108-field SFLP combined line; every field not given is empty (field 1 included)."""
    pos = layout_positions()
    fields = [""] * SFLP_FIELDS
    for name, value in values.items():
        fields[pos[name] - 1] = value
    return "|".join(fields)


def write_hand_tapes(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for period, rows in _MONTHS.items():
        lines = []
        for loan, rate, upb, age, dlq, zb, last_upb in rows:
            orig_rate, orig_upb, first_pay, orig_date = _LOANS[loan]
            first = mmyyyy(first_pay)
            maturity = dt.date(first.year + 29, 12 if first.month == 1 else first.month - 1, 1)
            values = {
                **_STATIC,
                "LOAN_ID": loan,
                "ACT_PERIOD": period,
                "ORIG_RATE": orig_rate,
                "CURR_RATE": rate,
                "ORIG_UPB": orig_upb,
                "CURRENT_UPB": upb,
                "ORIG_DATE": orig_date,
                "FIRST_PAY": first_pay,
                "MATR_DT": maturity.strftime("%m%Y"),
                "LOAN_AGE": age,
                "REM_MONTHS": str(360 - int(age)) if age else "",
                "DLQ_STATUS": dlq,
                "Zero_Bal_Code": zb,
                "ZB_DTE": period if zb else "",
                "LAST_UPB": last_upb,
            }
            lines.append(sflp_line(values))
        path = folder / f"hand_{period[2:]}{period[:2]}.txt"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def handmade(env: Env) -> dict[str, StageLine]:
    tapes = write_hand_tapes(env.root / "hand_tapes")
    env.add_tenant(HAND_TENANT)
    env.deliver(HAND_TENANT, tapes)
    return vault_run(HAND_TENANT)


def _by_key(frame: pl.DataFrame, *keys: str) -> dict:
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in frame.to_dicts()}


def cents(value: float) -> float:
    return round(value, 2)


def test_handmade_tape_gold_numbers_to_the_cent(env: Env, handmade: dict[str, StageLine]) -> None:
    assert handmade["extract"].rows == 22
    assert "(0 quarantined)" in handmade["extract"].message
    gold = env.gold(HAND_TENANT)
    pm = _by_key(gold["portfolio_monthly"], "period")
    assert sorted(pm) == [P1, P2, P3]

    def check(row: dict, want: dict) -> None:
        for col, value in want.items():
            assert same(col, value, row[col]), f"{row['period']} {col}: {row[col]!r} != {value!r}"

    zero_loans = {f"{s}_loans": 0 for s in ("current", "dpd30", "dpd60", "dpd90p", "unknown")}
    zero_upb = {f"{s}_upb": 0.0 for s in ("current", "dpd30", "dpd60", "dpd90p")}
    no_terminations = dict(prepaid_loans=0, prepaid_upb=0.0, defaulted_loans=0, defaulted_upb=0.0)
    check(
        pm[P1],
        {
            **zero_loans,
            **zero_upb,
            **no_terminations,
            "active_loans": 7,
            "active_upb": 1_029_099.56,
            "current_loans": 5,
            "current_upb": 819_099.56,
            "dpd30_loans": 1,
            "dpd30_upb": 90_000.00,
            "dpd90p_loans": 1,
            "dpd90p_upb": 120_000.00,
            "dq30p_rate_count": 2 / 7,
            "dq30p_rate_upb": 0.204061889212397,
            "smm": None,
            "cpr": None,
            "mdr": None,
            "cdr": None,
        },
    )
    check(
        pm[P2],
        {
            **zero_loans,
            **zero_upb,
            **no_terminations,
            "active_loans": 7,
            "active_upb": 1_028_446.40,
            "current_loans": 3,
            "current_upb": 638_446.40,
            "dpd30_loans": 1,
            "dpd30_upb": 100_000.00,
            "dpd60_loans": 1,
            "dpd60_upb": 90_000.00,
            "dpd90p_loans": 1,
            "dpd90p_upb": 120_000.00,
            "unknown_loans": 1,
            "dq30p_rate_count": 0.5,
            "dq30p_rate_upb": 0.301425527591345,
            "smm": 0.0,
            "cpr": 0.0,
            "mdr": 0.0,
            "cdr": 0.0,
        },
    )
    check(
        pm[P3],
        {
            **zero_loans,
            **zero_upb,
            "active_loans": 5,
            "active_upb": 912_991.73,
            "current_loans": 5,
            "current_upb": 912_991.73,
            "prepaid_loans": 1,
            "prepaid_upb": 149_700.00,
            "defaulted_loans": 1,
            "defaulted_upb": 119_950.00,
            "dq30p_rate_count": 0.0,
            "dq30p_rate_upb": 0.0,
            "smm": 0.150491294786884,
            "cpr": 0.858741690958131,
            "mdr": 0.116803239162126,
            "cdr": 0.774737130976833,
        },
    )

    rolls = {
        (r["period"], r["from_status"], r["to_status"]): (
            r["loans"],
            r["upb"],
            r["rate_count"],
            r["rate_upb"],
        )
        for r in gold["roll_rates"].to_dicts()
    }
    want_rolls = {
        (P2, "current", "current"): (3, 639_099.56, 3 / 5, 0.780246493561661),
        (P2, "current", "dpd30"): (1, 100_000.00, 1 / 5, 0.122085281354633),
        (P2, "current", "unknown"): (1, 80_000.00, 1 / 5, 0.097668225083706),
        (P2, "dpd30", "dpd60"): (1, 90_000.00, 1.0, 1.0),
        (P2, "dpd90p", "dpd90p"): (1, 120_000.00, 1.0, 1.0),
        (P3, "current", "current"): (2, 488_596.40, 2 / 3, 0.765289617103561),
        (P3, "current", "prepaid"): (1, 149_850.00, 1 / 3, 0.234710382896439),
        (P3, "dpd30", "current"): (1, 100_000.00, 1.0, 1.0),
        (P3, "dpd60", "other_removal"): (1, 90_000.00, 1.0, 1.0),
        (P3, "dpd90p", "defaulted"): (1, 120_000.00, 1.0, 1.0),
    }
    assert sorted(rolls) == sorted(want_rolls)
    for key, (loans, upb, rate_count, rate_upb) in want_rolls.items():
        got = rolls[key]
        assert got[0] == loans, key
        assert same("upb", upb, got[1]), (key, got)
        assert same("rate_count", rate_count, got[2]), (key, got)
        assert same("rate_upb", rate_upb, got[3]), (key, got)

    snap = _by_key(gold["loan_snapshot"], "loan_id")
    want_snap = {
        # loan: (status, is_active, upb, loan_age, zero_balance_code)
        "HAND00000001": ("current", True, 189_600.00, 15, None),
        "HAND00000002": ("prepaid", False, 149_700.00, 15, "01"),
        "HAND00000003": ("defaulted", False, 119_950.00, 15, "09"),
        "HAND00000004": ("current", True, 298_491.73, 5, None),  # B(5), masked
        "HAND00000005": ("current", True, 95_000.00, 15, None),
        "HAND00000006": ("current", True, 79_900.00, 15, None),
        "HAND00000007": ("other_removal", False, 90_000.00, 15, "06"),
        "HAND00000008": ("current", True, 250_000.00, 1, None),  # age derived: 03-2022 + 1
    }
    assert sorted(snap) == sorted(want_snap)
    for loan, (status, active, upb, age, zb) in want_snap.items():
        row = snap[loan]
        assert row["period"] == P3, loan
        assert (row["status"], row["is_active"], row["loan_age"]) == (status, active, age), loan
        assert row["zero_balance_code"] == zb, loan
        assert same("upb", upb, row["upb"]), (loan, row["upb"], upb)

    # The independent implementation agrees with the hand arithmetic on the same tape too.
    expected = expected_gold(read_tape_rows(env.delivered(HAND_TENANT)))
    for table, frame in expected.items():
        assert_matches(table, frame, gold[table])


# --- Test 3: the drop --------------------------------------------------------------------------


def tape_loan_ids(paths: list[Path]) -> set[str]:
    return {r["loan_id"] for r in read_tape_rows(paths)}


@pytest.mark.parametrize("tenant", [GEN_TENANT, HAND_TENANT])
def test_drop_manifest_is_verifiable_and_tenant_scoped(
    env: Env, generated: GeneratedRun, handmade: dict[str, StageLine], tenant: str
) -> None:
    manifest_path = env.drop_manifests(tenant)[-1]  # drop ids sort by time
    manifest = json.loads(manifest_path.read_text())
    folder = manifest_path.parent
    assert manifest["drop_id"] == folder.name
    assert manifest["tenant"] == tenant
    publication = env.published(tenant, "SELECT build_id FROM main.publication")
    assert manifest["build_id"] == publication["build_id"][0]

    gold_tables = env.published(
        tenant, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'gold' ORDER BY 1"
    )["table_name"].to_list()
    assert sorted(f["table"] for f in manifest["files"]) == [f"gold.{t}" for t in gold_tables]
    assert {"gold.portfolio_monthly", "gold.roll_rates", "gold.loan_snapshot"} <= {
        f["table"] for f in manifest["files"]
    }
    documents = manifest["documents"]
    assert [d["file"] for d in documents] == ["data_dictionary.md"]
    listed = {f["file"] for f in manifest["files"] + documents} | {"manifest.json"}
    assert {p.name for p in folder.iterdir()} == listed  # nothing unlisted in the drop
    for doc in documents:
        path = folder / doc["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == doc["sha256"], doc["file"]
        assert path.stat().st_size == doc["bytes"], doc["file"]
    dictionary = (folder / "data_dictionary.md").read_text()
    for entry in manifest["files"]:  # every dropped column has a definition in the dictionary
        section = dictionary.split(f"## `{entry['table']}`\n", 1)[1].split("\n## ", 1)[0]
        for column in entry["schema"]:
            assert f"| `{column['name']}` |" in section, (entry["table"], column["name"])
    for entry in manifest["files"]:
        path = folder / entry["file"]
        assert path.is_file(), entry
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], entry["file"]
        assert path.stat().st_size == entry["bytes"], entry["file"]
        meta = pq.read_metadata(path)
        assert meta.num_rows == entry["rows"], entry["file"]
        schema = [{"name": f.name, "type": str(f.type)} for f in meta.schema.to_arrow_schema()]
        assert schema == entry["schema"], entry["file"]
        # Servicers get exactly what analysts see.
        published = env.published(tenant, f"SELECT * FROM {entry['table']}")
        dropped = pl.read_parquet(path)
        assert dropped.columns == published.columns
        assert dropped.sort(dropped.columns).equals(published.sort(published.columns))

    snapshot_ids = sorted(m["snapshot_id"] for m in env.snapshot_manifests(tenant))
    assert snapshot_ids and sorted(manifest["snapshot_ids"]) == snapshot_ids

    # Only this tenant's loans: exactly the loans delivered to it, none of the other tenant's.
    loans = set(pl.read_parquet(folder / "loan_snapshot.parquet")["loan_id"].to_list())
    assert loans == tape_loan_ids(env.delivered(tenant))
    other = HAND_TENANT if tenant == GEN_TENANT else GEN_TENANT
    assert loans.isdisjoint(tape_loan_ids(env.delivered(other)))


# --- Test 5: vault query is read-only ----------------------------------------------------------


def test_query_refuses_to_write(env: Env, generated: GeneratedRun) -> None:
    before = env.published(GEN_TENANT, "SELECT * FROM gold.roll_rates ORDER BY ALL")
    assert before.height > 0
    vault = Path(sys.executable).with_name("vault")
    result = subprocess.run(
        [str(vault), "query", "--tenant", GEN_TENANT, "DELETE FROM gold.roll_rates"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "read-only" in result.stderr, result.stderr
    after = env.published(GEN_TENANT, "SELECT * FROM gold.roll_rates ORDER BY ALL")
    assert after.equals(before)


# --- Test 4: idempotence and an incremental month (runs last: it delivers a new file) ---------


def test_rerun_is_idempotent_and_a_new_month_lands_incrementally(
    env: Env, generated: GeneratedRun
) -> None:
    first_ledger = env.ledger(GEN_TENANT)
    first_build = [r for r in first_ledger if r["stage"] == "transform"][-1]["details"]["build_id"]
    drops_before = env.drop_manifests(GEN_TENANT)
    snapshots_before = env.snapshot_manifests(GEN_TENANT)
    periods_before = env.published(GEN_TENANT, "SELECT period FROM gold.portfolio_monthly")

    # Nothing new delivered: nothing lands, same build, no second drop.
    again = vault_run(GEN_TENANT)
    assert again["extract"].rows == 0
    assert again["extract"].message == "no new files"
    assert again["drop"].message.startswith("already dropped this build:")
    records = env.ledger(GEN_TENANT)
    second = [r for r in records if r["run_id"] == records[-1]["run_id"]]
    assert [r["stage"] for r in second] == list(STAGES)
    assert all(r["status"] == "ok" for r in second)
    by_stage = {r["stage"]: r for r in second}
    assert by_stage["transform"]["details"]["build_id"] == first_build
    assert by_stage["drop"]["details"]["created"] is False
    assert by_stage["transform"]["details"]["rebuilt_from"] is None
    assert by_stage["publish"]["details"]["kept_before"] == dt.date.max.isoformat()
    # Validated before with the same suites and nothing rebuilt: the period-built tables are
    # checked in their latest period only.
    validated = by_stage["validate"]["details"]
    assert validated["checked_from"] == dt.date.max.isoformat()
    (latest_rows,) = env.published(
        GEN_TENANT,
        "SELECT count(*) FROM silver.loan_month "
        "WHERE period = (SELECT max(period) FROM silver.loan_month)",
    ).row(0)
    assert validated["loan_months_checked"] == latest_rows
    assert env.drop_manifests(GEN_TENANT) == drops_before
    assert env.snapshot_manifests(GEN_TENANT) == snapshots_before

    # One more month: exactly that file's rows land as a new snapshot, gold grows a period.
    env.deliver(GEN_TENANT, [generated.held_back])
    rows_in = line_count([generated.held_back])
    third = vault_run(GEN_TENANT)
    snapshots = env.snapshot_manifests(GEN_TENANT)
    assert len(snapshots) == len(snapshots_before) + 1
    new = next(m for m in snapshots if m not in snapshots_before)
    assert [f["key"] for f in new["files"]] == [f"{INBOUND}{generated.held_back.name}"]
    assert new["rows_landed"] == rows_in and new["rows_quarantined"] == 0
    assert third["extract"].rows == rows_in
    assert third["extract"].message == (
        f"landed {rows_in:,} rows (0 quarantined) as snapshot {new['snapshot_id']}"
    )
    records = env.ledger(GEN_TENANT)
    third_build = [r for r in records if r["stage"] == "transform"][-1]["details"]["build_id"]
    assert third_build != first_build
    drops = env.drop_manifests(GEN_TENANT)
    assert len(drops) == len(drops_before) + 1
    newest = json.loads(drops[-1].read_text())
    assert newest["build_id"] == third_build
    assert sorted(newest["snapshot_ids"]) == sorted(m["snapshot_id"] for m in snapshots)

    periods = env.published(GEN_TENANT, "SELECT period FROM gold.portfolio_monthly")
    assert periods.height == periods_before.height + 1
    new_period = read_tape_rows([generated.held_back])[0]["period"]
    assert periods["period"].max() == new_period
    # Only the new month was rebuilt and republished; the published loan-months are still
    # every delivered row, each key once.
    by_stage = {r["stage"]: r for r in records if r["run_id"] == records[-1]["run_id"]}
    assert by_stage["transform"]["details"]["rebuilt_from"] == new_period.isoformat()
    assert by_stage["publish"]["details"]["kept_before"] == new_period.isoformat()
    # ... and validated: the period-built tables in the new month, the rest whole.
    assert by_stage["validate"]["details"]["checked_from"] == new_period.isoformat()
    assert by_stage["validate"]["details"]["loan_months_checked"] == rows_in
    loan_months = env.published(
        GEN_TENANT,
        "SELECT count(*) AS n, count(DISTINCT (loan_id, period)) AS keys FROM silver.loan_month",
    )
    delivered = line_count(env.delivered(GEN_TENANT))
    assert loan_months.row(0) == (delivered, delivered)
    # And the grown gold still agrees with the independent computation over all 25 months.
    expected = expected_gold(read_tape_rows(env.delivered(GEN_TENANT)))
    gold = env.gold(GEN_TENANT)
    for table, frame in expected.items():
        assert_matches(table, frame, gold[table])
