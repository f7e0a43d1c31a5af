"""Parse tape files into canonical, typed Arrow tables, with row-level quarantine.

Lines are read by Arrow's streaming CSV reader as whole lines (so every row keeps its line
number), then split, normalised, typed and checked by one DuckDB query generated from the
file kind's rules and the contracts. No Python code touches individual rows. A row that
breaks its contract goes to quarantine with its line, column, check and reason; rows in =
rows out + rows quarantined, for every file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.servicing_tape.formats import TABLE_CONTRACTS, FieldRule, FileKind
from servicervault.contracts import contract
from servicervault.errors import VaultError
from servicervault.sql import literal

NUMBER = r"-?[0-9]+(\.[0-9]*)?"
WHOLE_NUMBER = r"-?[0-9]+(\.0*)?"
LINEAGE = ("_snapshot_id", "_source_file", "_line_number")
QUARANTINE_COLUMNS = (*LINEAGE, "column", "check", "reason", "raw_line")
BATCH_BYTES = 64 << 20
# A byte that never occurs in a tape, so Arrow's CSV reader hands over each line whole.
_WHOLE_LINE = "\x1f"
QUOTE = "'"


class TapeError(VaultError):
    """The whole file cannot be read as a tape; the message names the file and the problem."""


@dataclass(frozen=True)
class ParsedBatch:
    tables: dict[str, pa.Table]  # per kind table: rows that passed every check
    quarantine: pa.Table
    rows_in: int


def _raw(rule: FieldRule, kind: FileKind) -> str:
    """SQL for the field's text after null tokens, prefix and code map; NULL when absent."""
    text = f"f[{rule.position}]"
    if kind.strip_quotes:
        text = f"trim({text}, ' \"')"
    nulls = ", ".join(literal(t) for t in rule.null_tokens)
    text = f"CASE WHEN {text} IN ({nulls}) THEN NULL ELSE {text} END"
    if rule.first_chars:
        text = f"left({text}, {rule.first_chars})"
    if rule.code_map:
        whens = " ".join(f"WHEN {literal(a)} THEN {literal(b)}" for a, b in rule.code_map)
        text = f"CASE {text} {whens} ELSE {text} END"
    return text


def _typed(rule: FieldRule, raw: str) -> str:
    """SQL turning the field's text into the contract's type; NULL when unreadable."""
    col = rule.column
    if col.type == "VARCHAR":
        return raw
    if col.type == "DATE":
        return f"try_strptime({raw}, {literal(rule.date_format)})::DATE"
    if col.type == "DOUBLE":
        return f"CASE WHEN regexp_full_match({raw}, '{NUMBER}') THEN CAST({raw} AS DOUBLE) END"
    if col.type in ("INTEGER", "BIGINT"):
        return (
            f"CASE WHEN regexp_full_match({raw}, '{WHOLE_NUMBER}') "
            f"THEN TRY_CAST(CAST({raw} AS DOUBLE) AS {col.type}) END"
        )
    raise ValueError(f"contract type {col.type} cannot be parsed from a tape")


def _checks(rule: FieldRule) -> list[str]:
    """SQL yielding {column, check, reason} when the value breaks the contract, else NULL.

    Field names and formats can come from a tenant's config, so every text enters the SQL
    as an escaped literal."""
    col = rule.column
    name, raw = col.name, f'"raw_{col.name}"'
    shape = rule.date_format or col.type
    expected = f"{col.type} ({shape})" if rule.date_format else col.type

    def err(condition: str, check: str, reason: str) -> str:
        return (
            f"CASE WHEN {condition} THEN "
            f"{{'column': '{name}', 'check': '{check}', 'reason': {reason}}} END"
        )

    out = [
        err(
            f'{raw} IS NOT NULL AND "{name}" IS NULL',
            "unreadable",
            f"{literal(f'{name} ({rule.field_name}): cannot read {QUOTE}')} || {raw} || "
            f"{literal(f'{QUOTE} as {expected}')}",
        )
    ]
    if not col.nullable:
        out.append(
            err(f"{raw} IS NULL", "missing", literal(f"{name} ({rule.field_name}): missing"))
        )
    if col.min is not None or col.max is not None:
        low = f'"{name}" < {col.min}' if col.min is not None else "false"
        high = f'"{name}" > {col.max}' if col.max is not None else "false"
        out.append(
            err(
                f"{low} OR {high}",
                "out_of_range",
                f"'{name}: ' || \"{name}\" || ' outside [{col.min}, {col.max}]'",
            )
        )
    if col.allowed is not None:
        values = ", ".join(literal(v) for v in col.allowed)
        out.append(
            err(
                f'"{name}" NOT IN ({values})',
                "not_allowed",
                f"'{name}: ''' || \"{name}\" || ''' is not one of {', '.join(col.allowed)}'",
            )
        )
    return out


def _parse_sql(kind: FileKind, truncated_line: int | None) -> str:
    """One query for the file kind: split, normalise, type and check every column."""
    rules: dict[str, FieldRule] = {}
    for table in kind.tables:
        for rule in kind.rules[table]:
            rules.setdefault(rule.column.name, rule)
    typed = ",\n    ".join(
        f'{_raw(r, kind)} AS "raw_{n}", {_typed(r, _raw(r, kind))} AS "{n}"'
        for n, r in rules.items()
    )
    checks = ",\n      ".join(chk for r in rules.values() for chk in _checks(r))
    counts = ", ".join(str(n) for n in kind.field_counts)
    truncated = (
        f"WHEN _line_number = {truncated_line} THEN 'truncated last line: ' || _n_fields || "
        "' fields and no newline at the end of the file (was the upload cut off?)'"
        if truncated_line
        else ""
    )
    return f"""
WITH split AS (
  SELECT _line_number, line, string_split(line, {literal(kind.delimiter)}) AS f FROM lines
  {"WHERE _line_number > 1" if kind.header else ""}
),
typed AS (
  SELECT _line_number, line, len(f) AS _n_fields,
    {typed}
  FROM split
)
SELECT *,
  CASE WHEN _n_fields NOT IN ({counts}) THEN
    [{{'column': NULL, 'check': 'field_count', 'reason': CASE
       WHEN line = '' THEN 'empty line'
       {truncated}
       ELSE 'line has ' || _n_fields || {literal(f" fields; {kind.label} expected")} END}}]
  ELSE list_filter([
      {checks}
    ], x -> x IS NOT NULL)
  END AS _errors
FROM typed
"""


def _landed_columns(kind: FileKind, table: str) -> str:
    """Every deliverable contract column, NULL where this kind has no such field, so every
    snapshot of a table has one schema whatever the format it came from."""
    delivered = {r.column.name for r in kind.rules[table]}
    columns = [
        f'"{c.name}"' if c.name in delivered else f'CAST(NULL AS {c.type}) AS "{c.name}"'
        for c in contract(TABLE_CONTRACTS[table]).columns
        if c.source
    ]
    return ", ".join([*columns, *LINEAGE])


def read_lines(path: Path) -> pacsv.CSVStreamingReader:
    """Stream a text file as batches of whole lines."""
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


def parse_file(
    path: Path,
    kind: FileKind,
    source_file: str,
    snapshot_id: str,
    truncated_line: int | None = None,
) -> Iterator[ParsedBatch]:
    """Parse ``path`` batch by batch; memory is bounded by the batch size, not the file.

    ``truncated_line`` is the number of a last line that has no newline after it, so a
    short last line is reported as a cut-off upload rather than as a wrong field count.
    """
    sql = _parse_sql(kind, truncated_line)
    selects = {table: _landed_columns(kind, table) for table in kind.tables}
    primary, *derived = kind.tables
    con = duckdb.connect()
    first_line = 1
    try:
        for batch in read_lines(path):
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
                "CREATE OR REPLACE TEMP TABLE parsed AS SELECT *, "
                f"{literal(snapshot_id)} AS _snapshot_id, {literal(source_file)} AS _source_file "
                f"FROM ({sql})"
            )
            con.unregister("lines")
            tables = {
                primary: con.sql(
                    f"SELECT {selects[primary]} FROM parsed WHERE len(_errors) = 0 "
                    "ORDER BY _line_number"
                ).to_arrow_table()
            }
            for table in derived:
                # Attributes repeated on every monthly row: keep each loan's latest.
                tables[table] = con.sql(
                    f"SELECT {selects[table]} FROM parsed WHERE len(_errors) = 0 QUALIFY "
                    "row_number() OVER (PARTITION BY loan_id "
                    "ORDER BY as_of_period DESC, _line_number DESC) = 1 ORDER BY _line_number"
                ).to_arrow_table()
            quarantine = con.sql(
                "SELECT _snapshot_id, _source_file, _line_number, _errors[1].column AS column, "
                "_errors[1].check AS check, "
                "array_to_string(list_transform(_errors, x -> x.reason), '; ') AS reason, "
                "line AS raw_line FROM parsed WHERE len(_errors) > 0 ORDER BY _line_number"
            ).to_arrow_table()
            rows_in = n - (1 if kind.header and lines["_line_number"][0].as_py() == 1 else 0)
            yield ParsedBatch(tables=tables, quarantine=quarantine, rows_in=rows_in)
    except pa.ArrowInvalid as exc:
        raise TapeError(
            f"{source_file}: cannot be read as text near line {first_line}: {exc}"
        ) from None
    finally:
        con.close()
