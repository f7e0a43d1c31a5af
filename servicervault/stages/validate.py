"""Validate: Great Expectations suites, generated from the contracts, run on the warehouse.

The suites are derived, never hand-written, so a contract change is a validation change.
Great Expectations is imported only here (it costs seconds); the DuckDB bridge lives in
``servicervault.gx_bridge``. A failed expectation fails the stage, and ``publish`` refuses
any build that has not passed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from servicervault.config import Tenant
from servicervault.contracts import LINEAGE_COLUMNS, PERIOD, Contract, all_contracts
from servicervault.errors import NotReadyError
from servicervault.gx_bridge import ValidationOutcome, check_tables


def expectations_for(c: Contract) -> list[dict[str, Any]]:
    """Translate one contract into Great Expectations expectation configs."""
    columns = [col.name for col in c.columns]
    if c.schema == "silver":
        columns += LINEAGE_COLUMNS
    out: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": columns, "exact_match": True},
        },
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": c.min_rows}},
    ]
    if len(c.primary_key) == 1:
        out.append(
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": c.primary_key[0]}}
        )
    else:
        out.append(
            {
                "type": "expect_compound_columns_to_be_unique",
                "kwargs": {"column_list": list(c.primary_key)},
            }
        )
    for col in c.columns:
        if not col.nullable:
            out.append(
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col.name}}
            )
        if col.min is not None or col.max is not None:
            out.append(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": col.name, "min_value": col.min, "max_value": col.max},
                }
            )
        if col.allowed is not None:
            out.append(
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": col.name, "value_set": list(col.allowed)},
                }
            )
    return out


def suites() -> dict[str, list[dict[str, Any]]]:
    return {table: expectations_for(c) for table, c in all_contracts().items()}


def suites_fingerprint() -> str:
    """Identifies the expectations: periods checked by other suites must be checked again."""
    text = json.dumps(suites(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def warehouse_path(tenant: Tenant) -> Path:
    return tenant.home / "warehouse.duckdb"


def period_filters(checked_from: date, period_tables: Sequence[str]) -> dict[str, str]:
    """Row conditions that check only the periods from ``checked_from`` of each period table.

    Sound because those tables' earlier periods are exactly as a passed validation saw them,
    and every expectation of their suites holds period by period: each has ``period`` in its
    primary key, so uniqueness within each period is uniqueness. The latest period is always
    checked, so the row-count expectation never sees an empty table.
    """
    contracts = all_contracts()
    return {
        table: f"{PERIOD} >= LEAST(DATE '{checked_from.isoformat()}',"
        f" (SELECT max({PERIOD}) FROM {table}))"
        for table in period_tables
        if table in contracts and PERIOD in contracts[table].primary_key
    }


def validate(
    tenant: Tenant,
    run_id: str,
    checked_from: date | None = None,
    period_tables: Sequence[str] = (),
) -> ValidationOutcome:
    """Run every contract's suite against the tenant's warehouse; results kept per run.

    With ``checked_from``, the period-built tables are checked from that period on only.
    """
    outcome, write_reports = check(tenant, run_id, checked_from, period_tables)
    write_reports()
    return outcome


def check(
    tenant: Tenant,
    run_id: str,
    checked_from: date | None = None,
    period_tables: Sequence[str] = (),
) -> tuple[ValidationOutcome, Callable[[], None]]:
    """:func:`validate`, returning before its reports (``results.json`` and Data Docs) are
    written, with the function that writes them."""
    database = warehouse_path(tenant)
    if not database.exists():
        raise NotReadyError(
            f"tenant {tenant.id!r} has no warehouse yet ({database}); run `vault transform` first"
        )
    out_dir = tenant.home / "validations" / run_id
    filters = {} if checked_from is None else period_filters(checked_from, period_tables)
    return check_tables(
        database, suites(), out_dir, run_name=f"{tenant.id}-{run_id}", row_filters=filters
    )
