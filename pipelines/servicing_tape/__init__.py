"""dlt source for servicing tapes: parsed Arrow batches routed to loan_month, loan and quarantine.

Arrow items take dlt's fast path (no row-by-row normalisation); one dlt load is one
immutable file set per table under ``snapshots/<source>/<table>/<load_id>.*.parquet``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dlt

from pipelines.servicing_tape.parser import parse_tape
from pipelines.servicing_tape.tables import TABLES


@dataclass
class TapeFile:
    """A delivered file to land: where to read it and what it is called in the bucket."""

    path: Path
    key: str
    sha256: str
    bytes: int
    rows_in: int = 0
    rows_landed: int = 0
    rows_quarantined: int = 0


@dlt.source(name="servicing_tape")
def servicing_tape(
    files: list[TapeFile],
    layout: str,
    snapshot_id: str,
    on_file: Callable[[TapeFile], None] | None = None,
) -> object:
    """Parse each file against ``layout`` and route its rows to the three landed tables."""

    @dlt.resource(name="tape_rows", write_disposition="append", file_format="parquet")
    def tape_rows() -> Iterator[object]:
        for tape in files:
            for batch in parse_tape(tape.path, layout, tape.key, snapshot_id):
                tape.rows_in += batch.rows_in
                tape.rows_landed += batch.loan_month.num_rows
                tape.rows_quarantined += batch.quarantine.num_rows
                for name in TABLES:
                    table = getattr(batch, name)
                    if table.num_rows:
                        yield dlt.mark.with_table_name(table, name)
            if on_file:
                on_file(tape)

    return tape_rows
