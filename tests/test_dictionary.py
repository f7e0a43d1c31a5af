"""The data dictionary: generated from contracts and model headers, committed, never stale."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from pipelines.servicing_tape.parser import LINEAGE
from servicervault.cli import app
from servicervault.config import PROJECT_ROOT
from servicervault.contracts import all_contracts
from servicervault.dictionary import (
    DOC_PATH,
    LINEAGE_COLUMNS,
    REGENERATE_COMMAND,
    build_dictionary,
    data_dictionary,
    model_metadata,
    parse_model_header,
)


def _section(markdown: str, table: str) -> str:
    """The part of the dictionary about one table, up to the next table heading."""
    return markdown.split(f"## `{table}`\n", 1)[1].split("\n## ", 1)[0]


def test_committed_dictionary_is_current() -> None:
    committed = DOC_PATH.read_text() if DOC_PATH.exists() else ""
    assert committed == data_dictionary(), (
        f"{DOC_PATH.relative_to(DOC_PATH.parents[1])} is stale (a contract or model changed): "
        f"regenerate it with `{REGENERATE_COMMAND}` and commit the result"
    )


def test_every_gold_model_has_a_contract_with_every_column_defined() -> None:
    contracts = all_contracts()
    gold_models = {name for name in model_metadata() if name.startswith("gold.")}
    assert gold_models, "no gold models found under models/gold/"
    missing = sorted(gold_models - set(contracts))
    assert not missing, f"gold models without a contract (undocumented columns): {missing}"
    undefined = [
        f"{table}.{col.name}"
        for table, c in contracts.items()
        for col in c.columns
        if len(col.description.strip()) < 3
    ]
    assert not undefined, f"columns without a definition: {undefined}"


def test_dictionary_documents_every_published_table_and_column() -> None:
    markdown = data_dictionary()
    entries = build_dictionary()
    tables = [e.table for e in entries]
    assert tables == sorted(tables, key=lambda t: (not t.startswith("gold."), t))  # gold first
    assert not [t for t in tables if t.startswith("bronze.")]  # bronze is never published
    for table, c in all_contracts().items():
        section = _section(markdown, table)
        assert c.description in section
        for col in c.columns:
            row = next(
                line for line in section.splitlines() if line.startswith(f"| `{col.name}` |")
            )
            assert col.type in row and " ".join(col.description.split()) in row, row
        if c.schema == "silver":  # lineage columns are there too, and are the real ones
            for name in LINEAGE:
                assert f"| `{name}` |" in section, (table, name)
    assert tuple(LINEAGE_COLUMNS) == LINEAGE
    # Every file the dictionary points to exists.
    for path in re.findall(r"\*\*(?:Contract|Built by):\*\* `([^`]+)`", markdown):
        assert (PROJECT_ROOT / path).is_file(), path
    # Grain and the building model come from the MODEL header.
    roll = _section(markdown, "gold.roll_rates")
    assert "**Grain:** one row per `period`, `from_status`, `to_status`" in roll
    assert "`models/gold/roll_rates.sql` (INCREMENTAL_BY_TIME_RANGE)" in roll
    assert "one of `current`, `dpd30`, `dpd60`, `dpd90p`" in roll


def test_dictionary_for_a_subset_of_tables() -> None:
    markdown = data_dictionary(["gold.roll_rates", "gold.portfolio_monthly"], "Drop X.")
    assert "\nDrop X.\n" in markdown
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## `gold.portfolio_monthly`", "## `gold.roll_rates`"]


def test_a_table_without_contract_is_listed_from_its_model() -> None:
    [entry] = build_dictionary(["silver.loan_performance"])
    assert entry.contract is None and entry.model is not None
    section = _section(data_dictionary(["silver.loan_performance"]), "silver.loan_performance")
    assert entry.model.description and entry.model.description in section
    assert "no column contract" in section


def test_model_header_parser_handles_quotes_comments_and_nesting() -> None:
    sql = """
    -- a leading comment with MODEL ( in it
    MODEL (
      name gold.example, -- trailing, comment (with parens)
      kind INCREMENTAL_BY_TIME_RANGE (time_column period, batch_size 12),
      description 'It''s a test, with commas (and parens) -- and dashes',
      grain (
        period,
        loan_id
      ),
      audits (not_null(columns := (period)))
    );
    SELECT 1 AS x
    """
    meta = parse_model_header(sql, Path("models/gold/example.sql"))
    assert meta is not None
    assert meta.name == "gold.example"
    assert meta.kind == "INCREMENTAL_BY_TIME_RANGE"
    assert meta.grain == ("period", "loan_id")
    assert meta.description == "It's a test, with commas (and parens) -- and dashes"
    assert parse_model_header("SELECT 1", Path("x.sql")) is None


def test_cli_writes_the_dictionary(tmp_path: Path) -> None:
    out = tmp_path / "dd.md"
    result = CliRunner().invoke(app, ["dictionary", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    assert out.read_text() == data_dictionary()
    printed = CliRunner().invoke(app, ["dictionary", "--out", "-"])
    assert printed.exit_code == 0 and printed.stdout == data_dictionary()
