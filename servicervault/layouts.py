"""Tape layouts: the published field positions of each servicing-tape format.

The CSV files in ``pipelines/servicing_tape/layouts/`` are the single source of truth for
positions and formats; the generator writes tapes from them and the parser reads tapes
against them (through ``pipelines/servicing_tape/formats.yaml``), so the two cannot drift.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LAYOUT_DIR = Path(__file__).resolve().parents[1] / "pipelines" / "servicing_tape" / "layouts"

# Column holding the field name / format differs between the published layout files.
_NAME_COLUMNS = ("lppub_name", "name")
_FORMAT_COLUMNS = ("format", "type_format")


@dataclass(frozen=True)
class Field:
    """One pipe-delimited field of a tape layout."""

    position: int
    name: str
    format: str

    @property
    def is_date(self) -> bool:
        return self.format in {"MMYYYY", "MM/YYYY", "MM/DD/YYYY", "YYYYMM"}

    @property
    def is_numeric(self) -> bool:
        return self.format.startswith("9(")


@cache
def load_layout(file_name: str) -> tuple[Field, ...]:
    """Read a layout CSV into its fields, ordered by position."""
    path = LAYOUT_DIR / file_name
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    name_col = next(c for c in _NAME_COLUMNS if c in rows[0])
    format_col = next(c for c in _FORMAT_COLUMNS if c in rows[0])
    fields = tuple(
        Field(position=int(r["position"]), name=r[name_col], format=r[format_col]) for r in rows
    )
    return tuple(sorted(fields, key=lambda f: f.position))


def sflp_fields(field_count: int = 108) -> tuple[Field, ...]:
    """The first ``field_count`` fields of Fannie Mae's SFLP combined layout (108/110/113)."""
    return load_layout("fnma_sflp_combined.csv")[:field_count]
