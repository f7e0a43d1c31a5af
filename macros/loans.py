"""SQLMesh macros for loan attributes that several gold models derive the same way."""

from sqlglot import exp, parse_one
from sqlmesh import macro
from sqlmesh.core.macros import MacroEvaluator


@macro()
def origination_month(
    evaluator: MacroEvaluator, orig_date: exp.Expression, first_pay_date: exp.Expression
) -> exp.Expression:
    """The origination month: as delivered, else two months before the first payment.

    Freddie Mac tapes carry no origination date; a mortgage's first payment falls due on
    the first of the second month after closing, so first payment - 2 months is its month.
    """
    return parse_one(
        f"COALESCE({orig_date.sql('duckdb')}, "
        f"CAST({first_pay_date.sql('duckdb')} - INTERVAL 2 MONTH AS DATE))",
        dialect="duckdb",
    )


@macro()
def age_from_first_payment(
    evaluator: MacroEvaluator, first_pay_date: exp.Expression, period: exp.Expression
) -> exp.Expression:
    """Loan age at ``period`` per PRODUCT.md when a tape does not report it: months from the
    first payment date + 1 (the first payment month is age 1)."""
    return parse_one(
        f"CAST(DATE_DIFF('month', {first_pay_date.sql('duckdb')}, {period.sql('duckdb')}) + 1 "
        "AS INT)",
        dialect="duckdb",
    )


@macro()
def vintage(
    evaluator: MacroEvaluator, orig_date: exp.Expression, first_pay_date: exp.Expression
) -> exp.Expression:
    """The vintage: the origination quarter, e.g. ``2021Q3``."""
    month = origination_month(evaluator, orig_date, first_pay_date).sql("duckdb")
    return parse_one(f"STRFTIME({month}, '%Y') || 'Q' || QUARTER({month})", dialect="duckdb")
