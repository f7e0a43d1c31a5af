"""Data dictionary: every published column with a definition an analyst can read.

Generated, never written by hand, so it cannot drift from what is built: column types,
constraints and definitions come from ``contracts/`` (the same source the parser, the
validation suites and the database's column comments use), and each table's grain and
how it is built from the ``MODEL (...)`` header of its model under ``models/``. The header
is read with a small scanner rather than by importing SQLMesh, so ``vault dictionary`` and
the drop stage stay fast.

The repo keeps the rendered copy as ``docs/data_dictionary.md`` (a test fails when it is
stale) and every drop carries one for the gold tables it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from servicervault.config import PROJECT_ROOT
from servicervault.contracts import LINEAGE_COLUMNS, Column, Contract, all_contracts

MODELS_DIR = PROJECT_ROOT / "models"
DOC_PATH = PROJECT_ROOT / "docs" / "data_dictionary.md"
REGENERATE_COMMAND = "uv run vault dictionary"

# Only these layers are published (analytics database) or dropped; bronze stays internal.

LAYER_ORDER = ("gold", "silver")

_CONTRACT_POINTER = re.compile(r"\s*\(contract: [^)]*\)")
# A sentence ends at ". " before a capital letter, so "i.e. status" does not end one.
_FIRST_SENTENCE = re.compile(r"(?<=[^.\s][.])\s+(?=[A-Z])")

_LAYOUT_LABELS = {
    "fannie_sflp": "Fannie SFLP",
    "fannie_legacy": "Fannie legacy",
    "freddie_sflld": "Freddie SFLLD",
}


@dataclass(frozen=True)
class ModelMeta:
    """What a model's ``MODEL (...)`` header says about the table it builds."""

    name: str
    path: Path
    kind: str | None
    grain: tuple[str, ...]
    description: str | None


@dataclass(frozen=True)
class TableEntry:
    """One table of the dictionary: its contract (columns) and its model (how it is built)."""

    table: str
    contract: Contract | None
    model: ModelMeta | None

    @property
    def schema(self) -> str:
        return self.table.split(".", 1)[0]

    @property
    def description(self) -> str:
        if self.contract is not None:
            return self.contract.description
        if self.model is not None and self.model.description:
            return self.model.description
        return "No description."

    @property
    def grain(self) -> tuple[str, ...]:
        if self.model is not None and self.model.grain:
            return self.model.grain
        return self.contract.primary_key if self.contract is not None else ()


# --- MODEL header scanning -------------------------------------------------------------------


def _strip_comments(sql: str) -> str:
    """``sql`` without ``--`` comments; a ``--`` inside a quoted string is kept."""
    out, i = [], 0
    while i < len(sql):
        if sql[i] == "'":
            j = _skip_string(sql, i)
            out.append(sql[i:j])
            i = j
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            if i < 0:
                break
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)


def _skip_string(text: str, i: int) -> int:
    """Index just after the single-quoted SQL string starting at ``i`` ('' is a quote)."""
    i += 1
    while i < len(text):
        if text[i] == "'":
            if text.startswith("''", i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _split_top_level(text: str, start: int = 0) -> list[str]:
    """Split ``text`` from ``start`` at depth-0 commas up to the unmatched ``)``."""
    items, depth, begin, i = [], 0, start, start
    while i < len(text):
        ch = text[i]
        if ch == "'":
            i = _skip_string(text, i)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[begin:i])
            begin = i + 1
        i += 1
    items.append(text[begin:i])
    return [item.strip() for item in items if item.strip()]


def parse_model_header(sql: str, path: Path) -> ModelMeta | None:
    """Name, kind, grain and description from a SQLMesh model file; None without a header."""
    sql = _strip_comments(sql)
    start = re.search(r"\bMODEL\s*\(", sql, flags=re.IGNORECASE)
    if start is None:
        return None
    items = _split_top_level(sql, start.end())
    props: dict[str, str] = {}
    for item in items:
        key, _, value = re.sub(r"\s", " ", item, count=1).partition(" ")
        props[key.lower()] = value.strip()
    if "name" not in props:
        return None
    description = props.get("description")
    if description and description.startswith("'") and description.endswith("'"):
        description = description[1:-1].replace("''", "'")
    grain = props.get("grain", props.get("grains", "")).strip("()")
    kind = props.get("kind")
    return ModelMeta(
        name=props["name"],
        path=path,
        kind=kind.split()[0].split("(")[0] if kind else None,
        grain=tuple(g.strip() for g in grain.split(",") if g.strip()),
        description=" ".join(description.split()) if description else None,
    )


def model_metadata(models_dir: Path = MODELS_DIR) -> dict[str, ModelMeta]:
    """Every model under ``models_dir`` keyed by its qualified name, e.g. ``gold.roll_rates``."""
    found = {}
    for path in sorted(models_dir.rglob("*.sql")):
        meta = parse_model_header(path.read_text(), path)
        if meta is not None:
            found[meta.name] = meta
    return found


# --- Building and rendering ------------------------------------------------------------------


def build_dictionary(tables: Iterable[str] | None = None) -> list[TableEntry]:
    """Entries for ``tables`` (qualified names), or for every published table.

    Publish copies exactly the contracted tables, so those are the default. Gold comes first
    (the analysts' and servicers' contract), then silver; alphabetical within a layer. An
    explicitly named table without a contract is listed from its model's description.
    """
    contracts = all_contracts()
    models = model_metadata()
    names = set(contracts) if tables is None else set(tables)

    def order(table: str) -> tuple[int, str]:
        schema = table.split(".", 1)[0]
        rank = LAYER_ORDER.index(schema) if schema in LAYER_ORDER else len(LAYER_ORDER)
        return rank, table

    return [TableEntry(t, contracts.get(t), models.get(t)) for t in sorted(names, key=order)]


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped, newlines folded."""
    return " ".join(text.split()).replace("|", "\\|")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _constraints(col: Column, key: tuple[str, ...]) -> str:
    parts = []
    if col.name in key:
        parts.append("key")
    if not col.nullable:
        parts.append("not null")
    if col.min is not None and col.max is not None:
        parts.append(f"{_number(col.min)} to {_number(col.max)}")
    elif col.min is not None:
        parts.append(f"≥ {_number(col.min)}")
    elif col.max is not None:
        parts.append(f"≤ {_number(col.max)}")
    if col.allowed:
        parts.append("one of " + ", ".join(f"`{v}`" for v in col.allowed))
    if col.pii != "none":
        parts.append(f"PII: {col.pii.replace('_', '-')}")
    return "; ".join(parts)


def _tape_fields(col: Column) -> str:
    return "; ".join(
        f"{_LAYOUT_LABELS.get(layout, layout)} `{name}`" for layout, name in col.source.items()
    )


def _render_table(entry: TableEntry) -> list[str]:
    lines = [f"## `{entry.table}`", "", entry.description, ""]
    facts = []
    if entry.grain:
        facts.append(f"**Grain:** one row per {', '.join(f'`{g}`' for g in entry.grain)}")
    if entry.model is not None:
        where = entry.model.path.relative_to(PROJECT_ROOT).as_posix()
        kind = f" ({entry.model.kind})" if entry.model.kind else ""
        facts.append(f"**Built by:** `{where}`{kind}")
    if entry.contract is not None:
        where = "contracts/" + ("gold/" if entry.schema == "gold" else "")
        facts.append(f"**Contract:** `{where}{entry.contract.name}.yaml`")
    if facts:
        lines += [" · ".join(facts), ""]
    if entry.contract is not None and entry.model is not None and entry.model.description:
        # The model's own "(contract: …)" pointer is already in the facts line above, and a
        # model description that only restates the contract's adds nothing.
        built = _CONTRACT_POINTER.sub("", entry.model.description)
        if _words(built) - _words(entry.contract.description):
            lines += [f"**Model:** {built}", ""]
    if entry.contract is None:
        lines += [
            "This table has no column contract yet: its columns are not validated or "
            "documented here (`DESCRIBE` it in the analytics database).",
            "",
        ]
        return lines

    key = entry.contract.primary_key
    with_sources = any(c.source for c in entry.contract.columns)
    header = ["column", "type", "definition", "constraints"]
    if with_sources:
        header.append("tape fields")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for col in entry.contract.columns:
        row = [f"`{col.name}`", col.type, _cell(col.description), _constraints(col, key)]
        if with_sources:
            row.append(_tape_fields(col))
        lines.append("| " + " | ".join(row) + " |")
    if entry.schema == "silver":
        for name, (dtype, text) in LINEAGE_COLUMNS.items():
            row = [f"`{name}`", dtype, text, "lineage; not null"]
            if with_sources:
                row.append("")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _summary(description: str, limit: int = 160) -> str:
    """The first sentence, cut at a word boundary when long: the contents column of the index."""
    first = _FIRST_SENTENCE.split(description, maxsplit=1)[0].rstrip(".")
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return first if first.endswith("…") else first + "."


def _anchor(table: str) -> str:
    """GitHub's heading anchor for ``## `schema.name` ``: lowercase, punctuation dropped."""
    return re.sub(r"[^a-z0-9_-]", "", table.lower())


def render_markdown(entries: list[TableEntry], preface: str | None = None) -> str:
    """The dictionary as Markdown: deterministic (no dates), so a stale copy is detectable.

    ``preface`` is a paragraph placed under the title (a drop says which drop it describes).
    """
    lines = [
        "# ServicerVault data dictionary",
        "",
        "<!-- Generated from contracts/ and models/ by `vault dictionary`; do not edit by hand. "
        f"Regenerate with `{REGENERATE_COMMAND}`. -->",
        "",
        *([preface, ""] if preface else []),
        "Every table an analyst can query in the read-only analytics database "
        "(`ATTACH '.vault/tenants/<tenant>/analytics.duckdb' AS vault (READ_ONLY)`) and every "
        "gold table a drop delivers as Parquet, with a definition for every column. The same "
        "definitions are the column comments in the database "
        "(`SELECT table_name, column_name, comment FROM duckdb_columns()`).",
        "",
        "How to read the numbers:",
        "",
        "- Rates, speeds, shares, severities and scores (`rate_count`, `rate_upb` and every "
        "`*_rate_count` / `*_rate_upb`, `smm`, `cpr`, `mdr`, `cdr`, `share_*`) are fractions "
        "(0.05 = 5 %); note rates, LTV and DTI (and their averages) are in percent, as their "
        "definitions say.",
        "- UPB, costs and proceeds are amounts in the tape's currency.",
        "- `period` is a reporting month, stored as its first day.",
        "- Loan statuses: `current`, `dpd30`, `dpd60`, `dpd90p` (active, by months delinquent), "
        "`unknown` (active, delinquency not reported), `prepaid`, `defaulted`, `other_removal` "
        "(terminated, by zero-balance code).",
        "",
        "| table | grain | contents |",
        "|---|---|---|",
    ]
    for entry in entries:
        grain = ", ".join(entry.grain)
        first = _summary(entry.description)
        link = f"[`{entry.table}`](#{_anchor(entry.table)})"
        lines.append(f"| {link} | {_cell(grain)} | {_cell(first)} |")
    lines.append("")
    for entry in entries:
        lines += _render_table(entry)
    return "\n".join(lines).rstrip() + "\n"


def data_dictionary(tables: Iterable[str] | None = None, preface: str | None = None) -> str:
    """The rendered dictionary for ``tables`` (default: everything published)."""
    return render_markdown(build_dictionary(tables), preface)


def write_dictionary(out: Path = DOC_PATH, tables: Iterable[str] | None = None) -> Path:
    """Write the dictionary to ``out`` (default ``docs/data_dictionary.md``) and return it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(data_dictionary(tables), encoding="utf-8")
    return out
