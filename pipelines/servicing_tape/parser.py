"""Parse servicing tapes into canonical, typed Arrow tables, with row-level quarantine.

Lines are read by Arrow's streaming CSV reader as whole lines (so every row keeps its line
number), then split, typed and checked by one DuckDB query generated from the contracts and
the tape layout. No Python code touches individual rows. A row that breaks its contract goes
to quarantine with its line, column and reason; rows in = rows landed + rows quarantined.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from servicervault.contracts import Column, Contract, contract
from servicervault.errors import VaultError
from servicervault.layouts import Field, sflp_fields

# Layouts this build parses: name -> (accepted field counts, fields by name).
FIELD_COUNTS = {"fannie_sflp": (108, 110, 113)}
DATE_FORMATS = {"MMYYYY": "%m%Y", "MM/YYYY": "%m/%Y", "MM/DD/YYYY": "%m/%d/%Y", "YYYYMM": "%Y%m"}
NUMBER = r"-?[0-9]+(\.[0-9]*)?"
WHOLE_NUMBER = r"-?[0-9]+(\.0*)?"
LINEAGE = ("_snapshot_id", "_source_file", "_line_number")
BATCH_BYTES = 64 << 20
# A byte that never occurs in a tape, so Arrow's CSV reader hands over each line whole.
_WHOLE_LINE = "\x1f"


class TapeError(VaultError):
    """The whole file cannot be read as a tape; the message names the file and the problem."""


@dataclass(frozen=True)
class ParsedBatch:
    loan_month: pa.Table
    loan: pa.Table
    quarantine: pa.Table
    rows_in: int


def _layout_fields(layout: str) -> dict[str, Field]:
    if layout != "fannie_sflp":
        raise TapeError(f"layout {layout!r} is not supported (supported: fannie_sflp)")
    return {f.name: f for f in sflp_fields(max(FIELD_COUNTS[layout]))}


def _sql_str(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _typed(col: Column, field: Field) -> str:
    """SQL turning field text into the contract's type; NULL when empty or unreadable."""
    raw = f"nullif(f[{field.position}], '')"
    if col.type == "VARCHAR":
        return raw
    if col.type == "DATE":
        return f"try_strptime({raw}, {_sql_str(DATE_FORMATS[field.format])})::DATE"
    if col.type == "DOUBLE":
        return f"CASE WHEN regexp_full_match({raw}, '{NUMBER}') THEN CAST({raw} AS DOUBLE) END"
    if col.type in ("INTEGER", "BIGINT"):
        return (
            f"CASE WHEN regexp_full_match({raw}, '{WHOLE_NUMBER}') "
            f"THEN CAST(CAST({raw} AS DOUBLE) AS {col.type}) END"
        )
    raise ValueError(f"contract type {col.type} cannot be parsed from a tape")


def _checks(col: Column, field: Field) -> list[str]:
    """SQL expressions yielding {column, reason} when the value breaks the contract, else NULL."""
    name, raw = col.name, f'"raw_{col.name}"'
    expected = f"{col.type} ({field.format})"

    def err(condition: str, reason: str) -> str:
        return f"CASE WHEN {condition} THEN {{'column': '{name}', 'reason': {reason}}} END"

    out = [
        err(
            f'{raw} IS NOT NULL AND "{name}" IS NULL',
            f"'{name}: cannot read ''' || {raw} || ''' as {expected}'",
        )
    ]
    if not col.nullable:
        out.append(err(f"{raw} IS NULL", f"'{name}: missing (required)'"))
    if col.min is not None or col.max is not None:
        low = f'"{name}" < {col.min}' if col.min is not None else "false"
        high = f'"{name}" > {col.max}' if col.max is not None else "false"
        out.append(
            err(
                f"{low} OR {high}", f"'{name}: ' || \"{name}\" || ' outside [{col.min}, {col.max}]'"
            )
        )
    if col.allowed is not None:
        values = ", ".join(_sql_str(v) for v in col.allowed)
        out.append(
            err(f'"{name}" NOT IN ({values})', f"'{name}: ''' || \"{name}\" || ''' not allowed'")
        )
    return out


@cache
def _parse_sql(layout: str) -> str:
    """One query for the layout: split, type and check every contracted column of every line."""
    fields = _layout_fields(layout)
    columns: dict[str, tuple[Column, Field]] = {}
    for c in (contract("silver.loan_month"), contract("silver.loan")):
        for col, field_name in c.sourced_columns(layout):
            columns.setdefault(col.name, (col, fields[field_name]))
    typed = ",\n    ".join(
        f'nullif(f[{fld.position}], \'\') AS "raw_{col.name}", {_typed(col, fld)} AS "{col.name}"'
        for col, fld in columns.values()
    )
    checks = ",\n      ".join(chk for col, fld in columns.values() for chk in _checks(col, fld))
    counts = ", ".join(str(n) for n in FIELD_COUNTS[layout])
    return f"""
WITH split AS (SELECT _line_number, line, string_split(line, '|') AS f FROM lines),
typed AS (
  SELECT _line_number, line, len(f) AS _n_fields,
    {typed}
  FROM split
)
SELECT *,
  CASE WHEN _n_fields NOT IN ({counts}) THEN
    [{{'column': NULL, 'reason': 'line has ' || _n_fields || ' fields; {layout} has {counts}'}}]
  ELSE list_filter([
      {checks}
    ], x -> x IS NOT NULL)
  END AS _errors
FROM typed
"""


def _select(c: Contract, layout: str) -> str:
    names = [col.name for col, _ in c.sourced_columns(layout)]
    return ", ".join(f'"{n}"' for n in names) + ", " + ", ".join(LINEAGE)


def _read_lines(path: Path) -> pacsv.CSVStreamingReader:
    try:
        return pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=["line"], block_size=BATCH_BYTES, use_threads=True
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=_WHOLE_LINE,
                quote_char=False,
                escape_char=False,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise TapeError(f"{path.name}: the file is empty") from None
        raise TapeError(f"{path.name}: cannot be read as text: {exc}") from None


def parse_tape(
    path: Path, layout: str, source_file: str, snapshot_id: str
) -> Iterator[ParsedBatch]:
    """Parse ``path`` batch by batch; memory is bounded by the batch size, not the file."""
    sql = _parse_sql(layout)
    loan_month_cols = _select(contract("silver.loan_month"), layout)
    loan_cols = _select(contract("silver.loan"), layout)
    con = duckdb.connect()
    first_line = 1
    try:
        for batch in _read_lines(path):
            n = batch.num_rows
            lines = pa.table(
                {
                    "_line_number": pa.array(range(first_line, first_line + n), pa.int64()),
                    "line": batch.column("line"),
                }
            )
            first_line += n
            con.register("lines", lines)
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE parsed AS SELECT *, "
                f"{_sql_str(snapshot_id)} AS _snapshot_id, {_sql_str(source_file)} AS _source_file "
                f"FROM ({sql})"
            )
            con.unregister("lines")
            yield ParsedBatch(
                loan_month=con.sql(
                    f"SELECT {loan_month_cols} FROM parsed WHERE len(_errors) = 0 "
                    "ORDER BY _line_number"
                ).to_arrow_table(),
                loan=con.sql(
                    f"SELECT {loan_cols} FROM parsed WHERE len(_errors) = 0 QUALIFY row_number() "
                    "OVER (PARTITION BY loan_id ORDER BY as_of_period DESC, _line_number DESC) = 1 "
                    "ORDER BY _line_number"
                ).to_arrow_table(),
                quarantine=con.sql(
                    "SELECT _snapshot_id, _source_file, _line_number, _errors[1].column AS column, "
                    "array_to_string(list_transform(_errors, x -> x.reason), '; ') AS reason, "
                    "line AS raw_line FROM parsed WHERE len(_errors) > 0 ORDER BY _line_number"
                ).to_arrow_table(),
                rows_in=n,
            )
    except pa.ArrowInvalid as exc:
        raise TapeError(
            f"{path.name}: cannot be read as text near line {first_line}: {exc}"
        ) from None
    finally:
        con.close()
