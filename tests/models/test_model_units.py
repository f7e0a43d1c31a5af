"""The SQLMesh unit tests of the models (``tests/models/test_*.yaml``), run from pytest.

SQLMesh runs its YAML tests itself (``Context.test``) on an in-memory DuckDB, each upstream
model mocked by the rows the test lists, so nothing is read from a bucket. Building the Context
is the slow part, so every YAML test runs in one ``Context.test()`` call (the first test here to
need it makes the call, in a throwaway VAULT_HOME); each YAML test then gets its own pytest test
that reports its outcome, so a failure names the model test that broke and shows SQLMesh's
table of expected and actual values.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicervault.contracts import all_contracts
from servicervault.stages.transform import make_context

HERE = Path(__file__).parent
YAML_FILES = sorted(HERE.glob("test_*.yaml"))
# Every test declared in the YAML files: (file name, test name, model), read without SQLMesh.
DECLARED = [
    (f.name, name, body["model"])
    for f in YAML_FILES
    for name, body in (yaml.safe_load(f.read_text()) or {}).items()
]


@dataclass
class Outcome:
    """What one ``Context.test()`` over every YAML test reported."""

    tests_run: int
    output: str
    models: list[str]
    passed: set[str] = field(default_factory=set)
    problems: dict[str, str] = field(default_factory=dict)
    # Per gold model: the column descriptions SQLMesh loaded and the columns its query selects.
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    selects: dict[str, list[str]] = field(default_factory=dict)


_OUTCOME: list[Outcome] = []


def _run_all(context: Any) -> Outcome:
    stream = io.StringIO()
    result = context.test(stream=stream)
    outcome = Outcome(
        tests_run=result.testsRun,
        output=stream.getvalue(),
        models=sorted(
            f"{m.fully_qualified_table.db}.{m.fully_qualified_table.name}"
            for m in context.models.values()
        ),
        passed={test.test_name for test in result.successes},
    )
    for m in context.models.values():
        table = f"{m.fully_qualified_table.db}.{m.fully_qualified_table.name}"
        if table.startswith("gold."):
            outcome.descriptions[table] = dict(m.column_descriptions)
            outcome.selects[table] = list(m.render_query().named_selects)
    for test, text in [*result.failures, *result.errors]:
        name = getattr(test, "test_name", str(test))
        outcome.problems[name] = outcome.problems.get(name, "") + text
    return outcome


@pytest.fixture
def model_tests(vault_home: Path, make_tenant: Any, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Every YAML model test, run once per session; the outcome is kept for the tests below."""
    if not _OUTCOME:
        # make_context only setdefault()s these; set them here so they are undone afterwards.
        monkeypatch.setenv("SQLMESH_HOME", str(vault_home / "sqlmesh"))
        monkeypatch.setenv("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", "1")
        context = make_context(make_tenant("unit"), with_tests=True)
        try:
            _OUTCOME.append(_run_all(context))
        finally:
            context.close()
    return _OUTCOME[0]


@pytest.mark.parametrize(
    ("file_name", "test_name"),
    [(f, n) for f, n, _ in DECLARED],
    ids=[f"{f}::{n}" for f, n, _ in DECLARED],
)
def test_model_unit(model_tests: Outcome, file_name: str, test_name: str) -> None:
    if test_name in model_tests.problems:
        pytest.fail(
            f"SQLMesh unit test {file_name}::{test_name} failed:\n"
            f"{model_tests.problems[test_name]}",
            pytrace=False,
        )
    assert test_name in model_tests.passed, (
        f"SQLMesh did not run {file_name}::{test_name} (is its model name right?)\n"
        f"{model_tests.output}"
    )


def test_sqlmesh_ran_exactly_the_declared_tests(model_tests: Outcome) -> None:
    names = [name for _, name, _ in DECLARED]
    assert len(names) == len(set(names)), "two YAML tests share a name"
    assert model_tests.tests_run == len(DECLARED), model_tests.output


def test_every_silver_and_gold_model_has_a_unit_test(model_tests: Outcome) -> None:
    tested = {model for _, _, model in DECLARED}
    built = [m for m in model_tests.models if not m.startswith("bronze.")]
    assert built, "SQLMesh loaded no models"
    missing = [m for m in built if m not in tested]
    assert not missing, f"models without a YAML unit test in tests/models/: {missing}"


def test_gold_models_select_exactly_their_contract_columns(model_tests: Outcome) -> None:
    """Static twin of tests/stages/test_transform.py: names and order, without a warehouse."""
    contracts = all_contracts()
    assert model_tests.selects, "SQLMesh loaded no gold models"
    for table, selected in model_tests.selects.items():
        assert table in contracts, f"{table} has no contract in contracts/gold/"
        assert selected == [c.name for c in contracts[table].columns], table


def test_gold_column_descriptions_come_from_the_contracts(model_tests: Outcome) -> None:
    """Every gold MODEL header documents its columns with its contract's words, not a copy.

    The headers say ``column_descriptions @contract_column_descriptions('gold.x')`` (macros/
    contracts.py), so the two cannot drift; this fails for a model that writes its own.
    """
    contracts = all_contracts()
    for table, described in model_tests.descriptions.items():
        expected = {c.name: c.description for c in contracts[table].columns}
        assert described == expected, table
