"""SQLMesh macros that take model metadata from the data contracts (``contracts/``).

The contracts are the single source of truth for what a column means: the validation suites,
the analytics database's column comments and the data dictionary read them. A gold model's
``MODEL (...)`` header says ``column_descriptions @contract_column_descriptions('gold.x')``
so SQLMesh documents (and comments) the warehouse table with the same text, not a copy.

SQLMesh caches loaded models keyed by the model and macro files' mtimes, not by the
contracts, so a contract edit alone reaches the warehouse comments at the next model or macro
change (or with a cleared ``VAULT_HOME/sqlmesh/cache``). Published comments and the data
dictionary read the contracts directly and are never stale.
"""

from sqlglot import exp
from sqlmesh import macro
from sqlmesh.core.macros import MacroEvaluator


@macro()
def contract_column_descriptions(evaluator: MacroEvaluator, table: exp.Expression) -> exp.Tuple:
    """``(col = 'description', ...)`` for every column of the contract of ``table``."""
    # Imported here, not at module level: SQLMesh serialises a macro's globals from modules
    # inside the project by source, and the contracts module holds paths it cannot serialise.
    from servicervault.contracts import contract

    return exp.Tuple(
        expressions=[
            exp.EQ(this=exp.column(col.name), expression=exp.Literal.string(col.description))
            for col in contract(table.name).columns
        ]
    )


@macro()
def contract_casts(evaluator: MacroEvaluator, table: exp.Expression) -> list[exp.Expression]:
    """``CAST(col AS TYPE) AS col, ...`` for every column of the contract of ``table``, in
    contract order, then a silver table's lineage columns. A model that reads its own previous
    rows selects these: SQLMesh must know every column's type to create its table empty, and
    the contract already says them."""
    from servicervault.contracts import LINEAGE_COLUMNS, contract

    c = contract(table.name)
    types = [(col.name, col.type) for col in c.columns]
    if c.schema == "silver":
        types += [(name, dtype) for name, (dtype, _) in LINEAGE_COLUMNS.items()]
    return [
        exp.cast(exp.column(name), exp.DataType.build(dtype, dialect="duckdb")).as_(name)
        for name, dtype in types
    ]
