"""SQLMesh macros for reading the tenant's landed snapshots."""

from sqlglot import exp, parse_one
from sqlmesh import macro
from sqlmesh.core.macros import MacroEvaluator


@macro()
def committed_rows(evaluator: MacroEvaluator, table: exp.Expression) -> exp.Expression:
    """Rows of a landed table from every committed snapshot of every source.

    A snapshot is committed once its manifest exists (extract writes it last), so the files of
    an interrupted extract are never read. ``snapshots_root`` is the tenant's snapshot prefix.
    """
    root = evaluator.var("snapshots_root")
    name = table.name
    return parse_one(
        f"""
        SELECT rows.*
        FROM READ_PARQUET('{root}/*/*/{name}/*.parquet', union_by_name := TRUE) AS rows
        WHERE rows._snapshot_id IN (
          SELECT snapshot_id
          FROM READ_JSON('{root}/*/*/manifest.json', columns := {{'snapshot_id': 'VARCHAR'}})
        )
        """,
        dialect="duckdb",
    )
