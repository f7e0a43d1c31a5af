"""CLI rendering that no other test covers: the run ledger view, usage errors, and how the
``vault`` process ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from servicervault import ledger
from servicervault.cli import app
from servicervault.ledger import StageRecord
from tests.conftest import MakeTenant


def test_runs_shows_the_newest_records_one_line_each(make_tenant: MakeTenant) -> None:
    tenant = make_tenant()
    for i, (stage, status) in enumerate([("extract", "ok"), ("validate", "failed")]):
        message = "landed 10 rows" if status == "ok" else "2 expectations failed\nsecond line"
        ledger.append(tenant, StageRecord(f"R{i}", tenant.id, stage, status, "t", 1.5, 10, message))
    out = CliRunner().invoke(app, ["runs", "--tenant", tenant.id, "--limit", "1"])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].startswith("run id") and len(lines) == 2  # header + newest, first line only
    assert (
        lines[1].startswith("R1") and "validate" in lines[1] and "2 expectations failed" in lines[1]
    )
    assert CliRunner().invoke(app, ["runs", "--tenant", tenant.id, "--limit", "0"]).exit_code == 2


def test_no_runs_yet_and_an_unknown_tenant(make_tenant: MakeTenant) -> None:
    tenant = make_tenant()
    out = CliRunner().invoke(app, ["runs", "--tenant", tenant.id])
    assert out.exit_code == 0 and "no runs recorded" in out.output
    out = CliRunner().invoke(app, ["runs", "--tenant", "../etc"])
    assert out.exit_code == 1 and "invalid tenant id" in out.output


def test_the_vault_process_flushes_all_its_output_and_keeps_its_exit_code(
    make_tenant: MakeTenant,
) -> None:
    """`vault` ends its process without the interpreter's teardown (cli.main): a long output
    through a pipe must still arrive whole, and a failure must still exit non-zero."""
    from servicervault.dictionary import data_dictionary

    vault = Path(sys.executable).with_name("vault")
    out = subprocess.run([vault, "dictionary", "--out", "-"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == data_dictionary()  # tens of kB, block-buffered
    failed = subprocess.run([vault, "runs", "--tenant", "../etc"], capture_output=True, text=True)
    assert failed.returncode == 1 and "invalid tenant id" in failed.stderr
    usage = subprocess.run([vault, "runs"], capture_output=True, text=True)
    assert usage.returncode == 2 and "--tenant" in usage.stderr
