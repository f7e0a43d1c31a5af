"""What the models' headers audit, and what they leave to the contracts' validation suites."""

from __future__ import annotations

from servicervault.contracts import all_contracts
from servicervault.stages.transform import _table, make_context
from tests.conftest import MakeTenant

# SQLMesh's generic audits that restate a contract rule (keys, not-null, ranges, allowed values).
CONTRACT_RULES = {
    "not_null",
    "unique_values",
    "unique_combination_of_columns",
    "accepted_values",
    "accepted_range",
}


def test_contract_rules_are_checked_once_and_intermediate_models_keep_theirs(
    make_tenant: MakeTenant,
) -> None:
    context = make_context(make_tenant())
    try:
        audits = {_table(m): [name for name, _ in m.audits] for m in context.models.values()}
    finally:
        context.close()
    contracted = set(all_contracts())
    repeated = {t: [a for a in names if a in CONTRACT_RULES] for t, names in audits.items()}
    assert {t: a for t, a in repeated.items() if t in contracted and a} == {}
    for intermediate in ("silver.loan_performance", "silver.loan_month_checks"):
        assert intermediate not in contracted
        assert {"not_null", "unique_combination_of_columns"} <= set(audits[intermediate])
    for keyed in ("silver.loan_checks", "silver.loan_last_delivery"):
        assert keyed not in contracted
        assert {"not_null", "unique_values"} <= set(audits[keyed])
    assert "every_loan_month_has_a_loan" in audits["silver.loan_performance"]
    assert "forall" in audits["gold.loss_severity"]
