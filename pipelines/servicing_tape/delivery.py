"""A delivery: the new files of one extract, parsed, checked together, ready to land.

Parsed batches are written as Parquet parts in a work folder; then one DuckDB pass over
all parts quarantines keys delivered twice (across files too), keeps each loan's latest
attributes where they repeat on monthly rows, and sorts rows by key (legacy files arrive
sorted by date *as text*). Only then does anything go to dlt, so a delivery over the
quarantine limit lands nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.servicing_tape.parser import QUARANTINE_COLUMNS, ParsedBatch
from servicervault.errors import VaultError
from servicervault.sql import literal

QUARANTINE_SELECT = ", ".join(f'"{c}"' for c in QUARANTINE_COLUMNS)
KEYS = {"loan_month": ("loan_id", "period"), "loan": ("loan_id",)}


class QuarantineLimitExceeded(VaultError):
    """Too many rows broke their contract; the delivery was not landed."""


@dataclass
class TapeFile:
    """A delivered file to land and what became of its rows."""

    path: Path  # the text to parse (decompressed when the delivery was gzip)
    key: str
    sha256: str
    bytes: int
    gzip: bool = False
    etag: str | None = None  # the server's content tag, to recognise the file without a download
    kind: str = ""
    rows_in: int = 0
    rows_landed: int = 0
    rows_quarantined: int = 0

    def summary(self) -> dict:
        return {
            "key": self.key,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "gzip": self.gzip,
            "etag": self.etag,
            "kind": self.kind,
            "rows_in": self.rows_in,
            "rows_landed": self.rows_landed,
            "rows_quarantined": self.rows_quarantined,
        }


class Delivery:
    def __init__(self, work_dir: Path) -> None:
        self.work = work_dir
        self.files: list[TapeFile] = []
        self._primary: dict[str, str] = {}  # file key -> its primary table
        self._parts = 0

    def add(self, tape: TapeFile, primary: str, batches: Iterator[ParsedBatch]) -> None:
        """Write a file's parsed batches as parts; derived tables go to ``<table>_derived``."""
        self.files.append(tape)
        self._primary[tape.key] = primary
        for batch in batches:
            tape.rows_in += batch.rows_in
            for table, rows in batch.tables.items():
                self._write(rows, table if table == primary else f"{table}_derived")
            self._write(batch.quarantine, "quarantine")

    def _write(self, rows: pa.Table, folder: str) -> None:
        if rows.num_rows:
            path = self.work / "parts" / folder / f"{self._parts:06d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, path)
            self._parts += 1

    def finish(self) -> dict[str, Path]:
        """Final tables (loan_month, loan, quarantine) after delivery-wide checks."""
        final = self.work / "final"
        final.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        con.execute(f"SET temp_directory = {literal(self.work / 'spill')}")
        out: dict[str, Path] = {}
        quarantine = [self._glob("quarantine")] if self._has("quarantine") else []
        for table, key in KEYS.items():
            if self._has(table):
                duplicates = self._unique(con, table, key, final / f"{table}.parquet")
                out[table] = final / f"{table}.parquet"
                quarantine.append(duplicates)
            elif self._has(f"{table}_derived"):
                out[table] = self._latest(con, table, final / f"{table}.parquet")
        if quarantine:
            union = " UNION ALL ".join(f"SELECT {QUARANTINE_SELECT} FROM {q}" for q in quarantine)
            target = final / "quarantine.parquet"
            con.execute(f"COPY ({union} ORDER BY _source_file, _line_number) TO {literal(target)}")
            out["quarantine"] = final / "quarantine.parquet"
        self._count(con, out)
        con.close()
        return out

    def _has(self, folder: str) -> bool:
        return (self.work / "parts" / folder).is_dir()

    def _glob(self, folder: str) -> str:
        return f"read_parquet({literal(self.work / 'parts' / folder / '*.parquet')})"

    def _unique(
        self, con: duckdb.DuckDBPyConnection, table: str, key: tuple[str, ...], target: Path
    ) -> str:
        """Keep the first delivery of each key; return SQL for the duplicates' quarantine rows."""
        cols = ", ".join(key)
        con.execute(
            f"CREATE TEMP TABLE ranked_{table} AS SELECT *, row_number() OVER w AS _rank, "
            "first_value(_source_file || ':' || _line_number) OVER w AS _first "
            f"FROM {self._glob(table)} "
            f"WINDOW w AS (PARTITION BY {cols} ORDER BY _source_file, _line_number)"
        )
        con.execute(
            f"COPY (SELECT * EXCLUDE (_rank, _first) FROM ranked_{table} WHERE _rank = 1 "
            f"ORDER BY {cols}) TO {literal(target)}"
        )
        shown = " || ', ' || ".join(f"CAST({k} AS VARCHAR)" for k in key)
        return (
            "(SELECT _snapshot_id, _source_file, _line_number, 'loan_id' AS column, "
            f"'duplicate' AS check, 'duplicate key ({cols}) = (' || {shown} || '), "
            "first delivered at ' || _first AS reason, NULL::VARCHAR AS raw_line "
            f"FROM ranked_{table} WHERE _rank > 1)"
        )

    def _latest(self, con: duckdb.DuckDBPyConnection, table: str, target: Path) -> Path:
        """Attributes repeated on monthly rows: one row per loan, from its latest period."""
        con.execute(
            f"COPY (SELECT * FROM {self._glob(f'{table}_derived')} QUALIFY row_number() OVER "
            "(PARTITION BY loan_id ORDER BY as_of_period DESC, _source_file DESC, "
            f"_line_number DESC) = 1 ORDER BY loan_id) TO {literal(target)}"
        )
        return target

    def _count(self, con: duckdb.DuckDBPyConnection, out: dict[str, Path]) -> None:
        """Per-file rows landed and quarantined; every row in must be accounted for."""
        landed: Counter[str] = Counter()
        for table in KEYS:
            if table in out:
                for source, n in con.execute(
                    f"SELECT _source_file, count(*) FROM {literal(out[table])} GROUP BY 1"
                ).fetchall():
                    if self._primary.get(source) == table:
                        landed[source] += n
        quarantined = Counter(
            dict(
                con.execute(
                    f"SELECT _source_file, count(*) FROM {literal(out['quarantine'])} GROUP BY 1"
                ).fetchall()
            )
            if "quarantine" in out
            else {}
        )
        for tape in self.files:
            tape.rows_landed, tape.rows_quarantined = landed[tape.key], quarantined[tape.key]
            if tape.rows_landed + tape.rows_quarantined != tape.rows_in:
                raise RuntimeError(
                    f"{tape.key}: {tape.rows_in} rows in but {tape.rows_landed} landed and "
                    f"{tape.rows_quarantined} quarantined"
                )


def check_quarantine_limit(
    files: list[TapeFile], quarantine: Path | None, limit_pct: float
) -> None:
    """Fail the delivery, with its top reasons, when too many rows were quarantined."""
    rows_in = sum(t.rows_in for t in files)
    bad = sum(t.rows_quarantined for t in files)
    if not rows_in or bad * 100 <= limit_pct * rows_in or quarantine is None:
        return
    top = duckdb.execute(
        'SELECT "check", coalesce("column", \'-\') AS col, count(*) AS n, '
        f"arg_min(_source_file || ':' || _line_number || ' ' || reason, _line_number) AS example "
        f"FROM {literal(quarantine)} GROUP BY ALL ORDER BY n DESC LIMIT 5"
    ).fetchall()
    reasons = "\n".join(
        f"  {n:>9,}  {check:<12} {column:<24} e.g. {example}" for check, column, n, example in top
    )
    raise QuarantineLimitExceeded(
        f"{bad:,} of {rows_in:,} rows ({bad * 100 / rows_in:.2f} %) broke their contract, "
        f"above the limit of {limit_pct:g} % (quarantine_limit_pct); nothing landed. "
        f"Top reasons:\n{reasons}"
    )
