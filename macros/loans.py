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


# The origination facts a delivery of a loan restates: each is checked against the same loan's
# previous delivery (accuracy, contracts/gold/data_quality.yaml).
COMPARED_ATTRIBUTES = (
    "orig_rate",
    "orig_upb",
    "orig_term",
    "first_pay_date",
    "orig_date",
    "fico",
    "oltv",
    "dti",
    "state",
    "channel",
)


def _compared_types() -> list[tuple[str, str]]:
    """Each compared attribute with its contract type."""
    from servicervault.contracts import contract

    types = {col.name: col.type for col in contract("silver.loan").columns}
    return [(name, types[name]) for name in COMPARED_ATTRIBUTES]


@macro()
def compared_loan_attributes(evaluator: MacroEvaluator) -> exp.Expression:
    """The compared origination facts of a loan row as one struct, each typed as its contract
    says, so a row landed now and one kept from an earlier build compare alike."""
    fields = ", ".join(f"{name} := CAST({name} AS {dtype})" for name, dtype in _compared_types())
    return parse_one(f"STRUCT_PACK({fields})", dialect="duckdb")


@macro()
def as_compared_loan_attributes(evaluator: MacroEvaluator, value: exp.Expression) -> exp.Expression:
    """``value`` cast to the type of :func:`compared_loan_attributes`: a model that keeps the
    struct and reads its own rows must give SQLMesh its type."""
    fields = ", ".join(f"{name} {dtype}" for name, dtype in _compared_types())
    return exp.cast(value, exp.DataType.build(f"STRUCT({fields})", dialect="duckdb"))
