"""vault query: read-only by construction."""

from __future__ import annotations

import duckdb
import pytest

from servicervault.errors import NotReadyError
from servicervault.stages.publish import analytics_path
from servicervault.stages.query import QueryError, QueryRefused, query
from tests.conftest import MakeTenant


@pytest.fixture
def published(make_tenant: MakeTenant):
    tenant = make_tenant()
    path = analytics_path(tenant)
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA gold; CREATE TABLE gold.t AS SELECT 1 AS a UNION ALL SELECT 2")
    con.close()
    return tenant


def test_reads_work(published) -> None:
    assert query(published, "SELECT sum(a) AS s FROM gold.t").to_pylist() == [{"s": 3}]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM gold.t",
        "CREATE TABLE gold.x AS SELECT 1",
        "COPY gold.t TO '/tmp/vault-exfiltrate.csv'",
        "ATTACH '/tmp/vault-other.duckdb' AS other",
        "SELECT * FROM read_csv('/etc/passwd')",
    ],
)
def test_writes_and_file_access_are_refused(published, sql: str) -> None:
    with pytest.raises(QueryRefused, match="refused: vault query is read-only"):
        query(published, sql)
    assert query(published, "SELECT count(*) AS n FROM gold.t").to_pylist() == [{"n": 2}]


def test_bad_sql_and_nothing_published_are_clear(published, make_tenant: MakeTenant) -> None:
    with pytest.raises(QueryError, match="syntax error"):
        query(published, "SELEC 1")
    with pytest.raises(NotReadyError, match="nothing published yet"):
        query(make_tenant("empty"), "SELECT 1")
