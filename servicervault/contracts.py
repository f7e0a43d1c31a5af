"""Data contracts: the one place a canonical column is defined.

``contracts/*.yaml`` describe the canonical silver tables, ``contracts/gold/*.yaml`` the gold
tables analysts and servicers rely on. The parser takes its output types and row checks from
them, the validation suites are generated from them, and a test checks that every model
produces exactly the contracted columns, so nothing retypes a column by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from servicervault.config import PROJECT_ROOT, load_yaml

CONTRACTS_DIR = PROJECT_ROOT / "contracts"
# The table with a row per loan and reporting period, and the column the period-built tables
# are built by: named once for the stages that treat them specially.
LOAN_MONTHS = "silver.loan_month"
PERIOD = "period"
# Every silver table carries where each row came from, as extract lands it: the columns a
# contract does not list, with their types and meaning.
LINEAGE_COLUMNS: dict[str, tuple[str, str]] = {
    "_snapshot_id": ("VARCHAR", "Snapshot the row was landed in (snapshots/<source>/<id>/)."),
    "_source_file": ("VARCHAR", "Inbound tape file the row was read from."),
    "_line_number": ("BIGINT", "Line of that file the row was read from (1-based)."),
}

DuckType = Literal["VARCHAR", "DOUBLE", "INTEGER", "BIGINT", "DATE", "BOOLEAN"]
PiiClass = Literal["none", "quasi_identifier", "identifier"]
_KNOWN_KEYS = {"type", "nullable", "pii", "description", "source", "min", "max", "allowed"}


@dataclass(frozen=True)
class Column:
    name: str
    type: DuckType
    description: str
    nullable: bool = True
    pii: PiiClass = "none"
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    source: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    name: str
    schema: str
    description: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    min_rows: int = 1  # 0 for tables that are legitimately empty (no liquidations yet)

    @property
    def table(self) -> str:
        """Qualified warehouse name, e.g. ``silver.loan_month``."""
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def sourced_columns(self, layout: str) -> tuple[tuple[Column, str], ...]:
        """Columns a tape in ``layout`` delivers, each with its field name in that layout."""
        return tuple((c, c.source[layout]) for c in self.columns if layout in c.source)


def _column(name: str, spec: dict[str, Any], where: Path) -> Column:
    unknown = set(spec) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"{where}: column {name!r} has unknown keys {sorted(unknown)}")
    allowed = spec.get("allowed")
    return Column(
        name=name,
        type=spec["type"],
        description=spec["description"],
        nullable=spec.get("nullable", True),
        pii=spec.get("pii", "none"),
        min=spec.get("min"),
        max=spec.get("max"),
        allowed=tuple(str(v) for v in allowed) if allowed is not None else None,
        source=dict(spec.get("source", {})),
    )


def _load(path: Path, schema: str) -> Contract:
    raw = load_yaml(path.read_text())
    return Contract(
        name=raw["name"],
        schema=schema,
        description=" ".join(raw["description"].split()),
        primary_key=tuple(raw["primary_key"]),
        columns=tuple(_column(n, s, path) for n, s in raw["columns"].items()),
        min_rows=raw.get("min_rows", 1),
    )


@cache
def all_contracts() -> dict[str, Contract]:
    """Every contract keyed by qualified table name: top level is silver, ``gold/`` is gold."""
    contracts = [_load(p, "silver") for p in sorted(CONTRACTS_DIR.glob("*.yaml"))]
    contracts += [_load(p, "gold") for p in sorted((CONTRACTS_DIR / "gold").glob("*.yaml"))]
    return {c.table: c for c in contracts}


def contract(table: str) -> Contract:
    return all_contracts()[table]
