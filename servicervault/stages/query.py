"""Query: read-only SQL over the published analytics database.

The database is opened read-only and with external access off, so a statement can neither
change the publication nor read or write other files (COPY, ATTACH, read_csv).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from servicervault.config import Tenant
from servicervault.errors import NotReadyError, VaultError
from servicervault.stages.publish import analytics_path


class QueryRefused(VaultError):
    """The statement tried to write or to reach outside the analytics database."""


class QueryError(VaultError):
    """The statement is not valid SQL for this database (message from DuckDB)."""


def query(tenant: Tenant, sql: str) -> pa.Table:
    path = analytics_path(tenant)
    if not path.exists():
        raise NotReadyError(
            f"tenant {tenant.id!r} has nothing published yet ({path}); run `vault run` first"
        )
    con = duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
    try:
        result = con.sql(sql)
        return result.to_arrow_table() if result is not None else pa.table({})
    except (duckdb.InvalidInputException, duckdb.PermissionException) as exc:
        if "read-only" in str(exc) or "disabled by configuration" in str(exc):
            raise QueryRefused(
                f"refused: vault query is read-only ({str(exc).split(': ', 1)[-1]})"
            ) from None
        raise QueryError(str(exc)) from None
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    finally:
        con.close()
