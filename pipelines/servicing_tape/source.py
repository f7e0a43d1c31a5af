"""dlt source for servicing tapes: a checked delivery's Parquet files, imported as they are.

The delivery's DuckDB already wrote each final table as Parquet, so dlt imports those files
into its load package (``with_file_import``) instead of decoding and re-encoding every row;
the file's Arrow schema is the table's schema hint. One dlt load is one file per table.
Parsing and delivery-wide checks happen before (``delivery.py``), so dlt only ever sees
rows that are fit to land.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dlt
import pyarrow as pa
import pyarrow.parquet as pq


@dlt.source(name="servicing_tape")
def servicing_tape(tables: dict[str, Path]) -> list[object]:
    """One resource per final table of the delivery, named as its dlt table."""
    return [
        dlt.resource(_imported(path), name=name, write_disposition="append", file_format="parquet")
        for name, path in tables.items()
    ]


def _imported(path: Path) -> Iterator[object]:
    meta = pq.read_metadata(path)
    # An empty table of the file's schema, built from no batches: ``Schema.empty_table()``
    # imports pandas (0.3 s of every extract) for nothing.
    schema = pa.Table.from_batches([], schema=meta.schema.to_arrow_schema())
    yield dlt.mark.with_file_import(str(path), "parquet", meta.num_rows, hints=schema)
