"""Tape formats as file kinds: which fields of which file feed which canonical columns.

Fixed formats are declared in ``formats.yaml`` (file kinds, null tokens, sentinels, code
maps) with positions from the layout CSVs and column mappings from the contracts. The
generic ``delimited`` format is built per tenant from its column mapping and each file's
header. Either way the parser gets the same thing: a ``FileKind`` with one rule per column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from servicervault.config import DelimitedSpec, load_yaml
from servicervault.contracts import Column, contract
from servicervault.layouts import load_layout

FORMATS_FILE = Path(__file__).with_name("formats.yaml")
TABLE_CONTRACTS = {"loan_month": "silver.loan_month", "loan": "silver.loan"}
DATE_FORMATS = {"MMYYYY": "%m%Y", "MM/YYYY": "%m/%Y", "MM/DD/YYYY": "%m/%d/%Y", "YYYYMM": "%Y%m"}


@dataclass(frozen=True)
class FieldRule:
    """How one canonical column is read from a delivered field."""

    column: Column
    field_name: str
    position: int  # 1-based
    date_format: str | None = None  # strptime format for DATE columns
    null_tokens: tuple[str, ...] = ("",)
    code_map: tuple[tuple[str, str], ...] = ()
    first_chars: int | None = None


@dataclass(frozen=True)
class FileKind:
    """One kind of file of a format, e.g. Fannie legacy ``performance``."""

    format: str
    name: str
    field_counts: tuple[int, ...]
    tables: tuple[str, ...]  # the first is the file's primary table; others are derived
    rules: dict[str, tuple[FieldRule, ...]] = field(hash=False, compare=False)
    delimiter: str = "|"
    header: bool = False
    strip_quotes: bool = False

    @property
    def label(self) -> str:
        counts = "/".join(str(n) for n in self.field_counts)
        return f"{self.format} {self.name} ({counts} fields)"


@cache
def _formats() -> dict:
    return load_yaml(FORMATS_FILE.read_text())


def fixed_formats() -> tuple[str, ...]:
    return tuple(_formats())


@cache
def file_kinds(format_name: str) -> tuple[FileKind, ...]:
    """The file kinds of a fixed format, in declaration order."""
    spec = _formats()[format_name]
    global_nulls = ("", *spec.get("null_tokens", []))
    kinds = []
    for kind_name, kind in spec["files"].items():
        layout = {f.name: f for f in load_layout(kind["layout"])}
        rules: dict[str, tuple[FieldRule, ...]] = {}
        for table in kind["tables"]:
            table_rules = []
            for col, field_name in contract(TABLE_CONTRACTS[table]).sourced_columns(format_name):
                fld = layout[field_name]
                table_rules.append(
                    FieldRule(
                        column=col,
                        field_name=field_name,
                        position=fld.position,
                        date_format=DATE_FORMATS[fld.format] if col.type == "DATE" else None,
                        null_tokens=(
                            *global_nulls,
                            *spec.get("field_null_tokens", {}).get(field_name, []),
                        ),
                        code_map=tuple(spec.get("code_maps", {}).get(field_name, {}).items()),
                        first_chars=spec.get("first_chars", {}).get(field_name),
                    )
                )
            rules[table] = tuple(table_rules)
        kinds.append(
            FileKind(
                format=format_name,
                name=kind_name,
                field_counts=tuple(kind["field_counts"]),
                tables=tuple(kind["tables"]),
                rules=rules,
            )
        )
    return tuple(kinds)


def delimited_kind(spec: DelimitedSpec, header: list[str]) -> FileKind:
    """The file kind of one delimited file, positions taken from its header line."""
    position = {name: i + 1 for i, name in enumerate(header)}
    by_canonical = {canonical: source for source, canonical in spec.columns.items()}
    if "period" in by_canonical:
        by_canonical.setdefault("as_of_period", by_canonical["period"])
    rules: dict[str, tuple[FieldRule, ...]] = {}
    for table in ("loan_month", "loan"):
        rules[table] = tuple(
            FieldRule(
                column=col,
                field_name=by_canonical[col.name],
                position=position[by_canonical[col.name]],
                date_format=spec.date_format if col.type == "DATE" else None,
                null_tokens=tuple(dict.fromkeys(["", *spec.null_tokens])),
                code_map=tuple(spec.code_maps.get(col.name, {}).items()),
            )
            for col in contract(TABLE_CONTRACTS[table]).columns
            if col.name in by_canonical
        )
    return FileKind(
        format="delimited",
        name="tape",
        field_counts=(len(header),),
        tables=("loan_month", "loan"),
        rules=rules,
        delimiter=spec.delimiter,
        header=True,
        strip_quotes=True,
    )
