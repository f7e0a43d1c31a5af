"""The analyst notebook runs headless on a freshly published database and draws its figures.

The real pipeline publishes a small portfolio for a temporary tenant; a copy of the notebook
is executed in ``tmp_path`` with nbclient on a kernel of this very interpreter, so nothing is
written into the repository and no kernel has to be installed. While it runs, the test holds
a read-only connection on the database: DuckDB would refuse a writable open from the
notebook, so passing proves the notebook only ever reads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

from servicervault.runner import run_stages
from servicervault.stages.publish import analytics_path
from tests.conftest import Deliver, MakeTenant

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "portfolio_analytics.ipynb"
FIGURES = ("fig_dq", "fig_speeds", "fig_roll", "fig_vintage")

# Appended to the executed copy only: what each named figure says about itself.
REPORT_CELL = f"""
import json
print("FIGURES=" + json.dumps({{
    name: {{
        "suptitle": globals()[name].get_suptitle(),
        "axes": [[ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] for ax in globals()[name].axes],
    }}
    for name in {FIGURES!r}
}}))
"""


def _kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``python3`` kernelspec for ``sys.executable`` that wins over any installed one."""
    jupyter_path = tmp_path / "jupyter"
    write_kernel_spec(jupyter_path / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


def test_notebook_is_committed_valid_and_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and not [c for c in code if c.outputs or c.execution_count is not None], (
        "clear the notebook's outputs before committing"
    )
    source = "\n".join(c.source for c in code)
    assert "read_only=True" in source


@pytest.mark.slow
def test_notebook_draws_every_figure_from_the_published_database(
    make_tenant: MakeTenant,
    deliver: Deliver,
    small_tapes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = make_tenant("analyst")
    deliver(tenant, small_tapes)
    records = run_stages(tenant, ("extract", "transform", "validate", "publish"))
    assert [r.status for r in records] == ["ok"] * 4, [r.message for r in records]
    db = analytics_path(tenant)
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    _kernel_env(tmp_path, monkeypatch)
    monkeypatch.setenv("VAULT_ANALYTICS_DB", str(db))
    work = tmp_path / "run"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    client = NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(work)}}
    )
    guard = duckdb.connect(str(db), read_only=True)  # a writable open would now fail
    try:
        client.execute()  # raises CellExecutionError, with the traceback, on any failing cell
    finally:
        guard.close()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= len(FIGURES), f"expected {len(FIGURES)} figures, got {len(pngs)}"

    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    report = json.loads(text.split("FIGURES=", 1)[1].splitlines()[0])
    titles = {
        name: " ".join([f["suptitle"], *(label for ax in f["axes"] for label in ax)])
        for name, f in report.items()
    }
    assert "Delinquency" in titles["fig_dq"] and "30+" in titles["fig_dq"]
    assert "CPR" in titles["fig_speeds"] and "CDR" in titles["fig_speeds"]
    assert "Roll" in titles["fig_roll"] and "from status" in titles["fig_roll"]
    assert "Vintage" in titles["fig_vintage"] and "loan age" in titles["fig_vintage"]

    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # read, never written
    assert not list(NOTEBOOK.parent.glob("*.executed.ipynb"))
