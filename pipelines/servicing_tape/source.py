"""dlt source for servicing tapes: a checked delivery's tables, loaded as Arrow batches.

Arrow items take dlt's fast path (no row-by-row normalisation); one dlt load is one file
set per table. Parsing and delivery-wide checks happen before (``delivery.py``), so dlt
only ever sees rows that are fit to land.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dlt
import pyarrow as pa
import pyarrow.parquet as pq

BATCH_ROWS = 250_000


@dlt.source(name="servicing_tape")
def servicing_tape(tables: dict[str, Path]) -> object:
    """Every final table of the delivery, routed to the dlt table of the same name."""

    @dlt.resource(name="tape_rows", write_disposition="append", file_format="parquet")
    def tape_rows() -> Iterator[object]:
        for name, path in tables.items():
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
                yield dlt.mark.with_table_name(pa.Table.from_batches([batch]), name)

    return tape_rows
