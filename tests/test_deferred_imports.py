"""Deferred imports: an import statement gets a stand-in; the module runs at its first use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicervault.deferred_imports import defer


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on the import path for throwaway modules, which are forgotten after the test.
    Each one appends its name to the file ``ran`` when it runs."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def _module(folder: Path, name: str, body: str = "") -> None:
    path = folder.joinpath(*name.split("."))
    if "." in name:
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
    ran = folder / "ran"
    path.with_suffix(".py").write_text(
        f"with open({str(ran)!r}, 'a') as f:\n    f.write({name!r} + '\\n')\n{body}"
    )


def _ran(folder: Path) -> list[str]:
    ran = folder / "ran"
    return ran.read_text().split() if ran.exists() else []


def test_an_import_gets_a_stand_in_and_the_first_use_runs_the_module_once(modules: Path) -> None:
    _module(modules, "heavy_one", "ANSWER = 42\ndef double(x):\n    return 2 * x\n")
    defer("heavy_one")
    import heavy_one

    assert _ran(modules) == []
    assert heavy_one.ANSWER == 42
    assert heavy_one.double(4) == 8
    from heavy_one import ANSWER

    assert ANSWER == 42
    assert _ran(modules) == ["heavy_one"]
    assert type(sys.modules["heavy_one"]).__name__ == "module"


def test_a_deferred_submodule_and_a_submodule_of_a_deferred_package_both_load(
    modules: Path,
) -> None:
    _module(modules, "pkg_a.stats", "def entropy():\n    return 0.0\n")
    _module(modules, "pkg_b.part", "VALUE = 'b'\n")
    defer("pkg_a.stats", "pkg_b")
    from pkg_a import stats

    assert _ran(modules) == []
    assert stats.entropy() == 0.0
    import pkg_b.part

    assert pkg_b.part.VALUE == "b"
    assert _ran(modules) == ["pkg_a.stats", "pkg_b.part"]


def test_a_module_already_imported_is_left_as_it_is(modules: Path) -> None:
    _module(modules, "heavy_two", "STATE = []\n")
    import heavy_two

    heavy_two.STATE.append("kept")
    defer("heavy_two")
    assert sys.modules["heavy_two"] is heavy_two
    assert heavy_two.STATE == ["kept"]


def test_a_missing_module_fails_at_its_first_use_as_an_import_would(modules: Path) -> None:
    defer("no_such_module_here")
    import no_such_module_here

    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        no_such_module_here.anything  # noqa: B018


def test_a_stand_in_knows_its_modules_file_without_running_it(modules: Path) -> None:
    """Code that only asks where a module lives (SQLMesh's API does, of its notebook magics)
    must not import it."""
    _module(modules, "pkg_c.magics", "RAN = True\n")
    _module(modules, "heavy_three")
    defer("pkg_c.magics", "heavy_three", "no_such_module")
    from pkg_c import magics

    assert magics.__file__ == str(modules / "pkg_c" / "magics.py")
    assert sys.modules["heavy_three"].__file__ == str(modules / "heavy_three.py")
    assert sys.modules["no_such_module"].__file__ is None
    assert _ran(modules) == []
    assert magics.RAN
    assert _ran(modules) == ["pkg_c.magics"]
