"""The SQLMesh unit tests of the models (``tests/models/test_*.yaml``), run from pytest.

SQLMesh runs its YAML tests itself (``Context.test``) against an in-memory DuckDB, with every
upstream model mocked by the rows the test lists; nothing is read from a bucket. Building the
Context is the slow part (~0.5 s once SQLMesh is imported), so it is built once per session and
every YAML test is run in that one call; each YAML test then gets its own pytest test that
reports just its outcome, so a failure names the model test that broke and shows SQLMesh's
diff of expected and actual rows.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicervault.stages.transform import make_context

HERE = Path(__file__).parent
YAML_FILES = sorted(HERE.glob("test_*.yaml"))
# (file name, test name) for every test declared in the YAML files, read without SQLMesh.
DECLARED = [(f.name, name) for f in YAML_FILES for name in yaml.safe_load(f.read_text()) or {}]


class _Run:
    """Outcome of one ``Context.test()`` over every YAML test, keyed by test name."""

    def __init__(self, result: Any, output: str, models: list[str]) -> None:
        self.tests_run: int = result.testsRun
        self.successful: bool = result.wasSuccessful()
        self.output = output
        self.models = models
        self.passed = {test.test_name for test in result.successes}
        self.problems: dict[str, str] = {}
        for test, text in [*result.failures, *result.errors]:
            name = getattr(test, "test_name", str(test))
            self.problems[name] = self.problems.get(name, "") + text
        self.tested_models = {
            str(test.body.get("model", "")) for test in [*result.successes]
        } | {
            str(getattr(test, "body", {}).get("model", ""))
            for test, _ in [*result.failures, *result.errors]
        }


_RUNS: dict[str, _Run] = {}


@pytest.fixture
def model_tests(make_tenant: Any) -> _Run:
    """Run every YAML model test once per session (in a throwaway VAULT_HOME) and keep the outcome."""
    if "all" not in _RUNS:
        context = make_context(make_tenant("unit"))
        stream = io.StringIO()
        try:
            result = context.test(stream=stream)
            models = sorted(
                f"{m.fully_qualified_table.db}.{m.fully_qualified_table.name}"
                for m in context.models.values()
            )
        finally:
            context.close()
        _RUNS["all"] = _Run(result, stream.getvalue(), models)
    return _RUNS["all"]


@pytest.mark.parametrize(
    "file_name, test_name", DECLARED, ids=[f"{f}::{n}" for f, n in DECLARED]
)
def test_model_unit(model_tests: _Run, file_name: str, test_name: str) -> None:
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


def test_every_declared_test_ran(model_tests: _Run) -> None:
    names = [name for _, name in DECLARED]
    assert len(names) == len(set(names)), "two YAML tests share a name"
    assert model_tests.tests_run == len(DECLARED), model_tests.output
    assert model_tests.successful, "\n".join(model_tests.problems.values())


def test_every_silver_and_gold_model_has_a_unit_test(model_tests: _Run) -> None:
    declared_models = set()
    for f in YAML_FILES:
        for body in (yaml.safe_load(f.read_text()) or {}).values():
            declared_models.add(body["model"])
    built = [m for m in model_tests.models if not m.startswith("bronze.")]
    assert built, "no models were loaded"
    missing = [m for m in built if m not in declared_models]
    assert not missing, f"models without a YAML unit test in tests/models/: {missing}"
