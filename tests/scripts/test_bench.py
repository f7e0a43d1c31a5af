"""Smoke run of the benchmark (scripts/bench.py, issue 6) on a tiny portfolio.

The benchmark itself takes many minutes and is not part of `make test`; this checks that it
still runs end to end, that its JSON carries the figures the docs are built from, and that its
plain-DuckDB baseline still computes the same gold.portfolio_monthly as the pipeline (the
ratio to it means nothing otherwise).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.servicing_tape.formats import file_kinds
from pipelines.servicing_tape.parser import TextFile, parse_files
from servicervault.config import PROJECT_ROOT
from servicervault.sql import literal
from tests.conftest import MakeTenant

BENCH = PROJECT_ROOT / "scripts" / "bench.py"
STAGES = ("extract", "transform", "validate", "publish", "drop")


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of 300 loans x 6 months (+ 4 later months, then 2 more), with the nights of its
    own 300-loan book for the fixed cost, shared by the module's tests."""
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "bench.json"
    args = ["--sizes", "300x6", "--query-runs", "5", "--later-months", "2"]
    args += ["--workdir", str(folder / "work")]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "incremental / full =" in done.stdout
    assert "landing floor (plain DuckDB" in done.stdout
    assert "later months: 2 more nights" in done.stdout
    assert "fixed cost of a night: a book of 300 loans" in done.stdout
    assert "both end to end and incremental: nights of at most" in done.stdout
    return json.loads(out.read_text())["sizes"][0]


@pytest.mark.slow
def test_every_stage_reports_rows_and_time(bench_report: dict) -> None:
    stages = bench_report["full"]["stages"]
    assert list(stages) == list(STAGES)
    for name, stage in stages.items():
        assert stage["rows"] > 0, name
        assert stage["seconds"] > 0, name
        assert stage["peak_rss_mib"] > 0, name
    assert bench_report["full"]["bytes"]["snapshots"] > 0


@pytest.mark.slow
def test_incremental_run_lands_only_the_new_month(bench_report: dict) -> None:
    full = bench_report["full"]["stages"]["extract"]["rows"]
    incremental = bench_report["incremental"]["stages"]["extract"]["rows"]
    assert 0 < incremental < full
    assert bench_report["incremental"]["share_of_full"] > 0
    # Validation checked the new month's loan-months, not the whole book again.
    assert bench_report["incremental"]["stages"]["validate"]["rows"] == incremental
    assert bench_report["full"]["stages"]["validate"]["rows"] == full


@pytest.mark.slow
def test_baseline_computes_what_the_pipeline_published(bench_report: dict) -> None:
    assert bench_report["baseline"]["matched"] is True, bench_report["baseline"]["mismatches"]
    assert bench_report["baseline"]["seconds"] > 0


@pytest.mark.slow
def test_the_landing_floor_is_measured_beside_the_baseline(bench_report: dict) -> None:
    floor, baseline = bench_report["landing_floor"], bench_report["baseline"]
    assert floor["seconds"] > 0 and floor["peak_rss_mib"] > 0
    assert floor["of_baseline"] == floor["seconds"] / baseline["seconds"]
    extract = bench_report["full_run"]["stage_seconds"]["extract"]
    assert floor["extract_ratio"] == extract / floor["seconds"]
    limit = {t["target"].strip(): t for t in bench_report["targets"]}[
        "end to end <= 2 x baseline + 15 s"
    ]["limit"]
    assert floor["e2e_limit_beyond"] == pytest.approx(limit - floor["seconds"])


@pytest.mark.slow
def test_query_latency_and_targets_are_reported(bench_report: dict) -> None:
    assert bench_report["query"]["in_process_ms"]["p95"] > 0
    assert bench_report["query"]["cli_ms"]["p95"] > 0
    assert len(bench_report["targets"]) == 5


@pytest.mark.slow
def test_nightly_month_runs_every_stage_in_one_process(bench_report: dict) -> None:
    nightly = bench_report["nightly"]
    assert nightly["tape"] > bench_report["incremental"]["tape"]  # the month after it
    assert 0 < nightly["rows"] < bench_report["full"]["stages"]["extract"]["rows"]
    assert list(nightly["stage_seconds"]) == list(STAGES)
    assert nightly["stage_seconds"]["transform"] > 0
    # SQLMesh and GX were imported in the workers; the bound adds the three processes' peaks.
    workers = nightly["worker_peak_rss_mib"]
    assert workers["transform"] > 100 and workers["validate"] > 100
    assert nightly["peak_rss_mib"] == nightly["process_peak_rss_mib"] + sum(workers.values())
    # One process: its wall time covers every stage's time inside it.
    assert nightly["seconds"] > sum(nightly["stage_seconds"].values())
    # Judged like for like: one `vault run` a night against one for the full run.
    assert nightly["share_of_full"] == nightly["seconds"] / bench_report["full_run"]["seconds"]
    # The workers' CPU is the run's: with GX and SQLMesh imported beside the stages, a night
    # keeps more than one core busy on average.
    assert nightly["cpu_seconds"] > nightly["seconds"]
    assert 0.5 / os.cpu_count() < nightly["cores_busy"] <= 1
    # The ledger's share of it: the run's own process, and each worker up to its result.
    parts = nightly["process_cpu_seconds"] + sum(nightly["worker_cpu_seconds"].values())
    assert 0.5 * nightly["cpu_seconds"] < parts <= nightly["cpu_seconds"]
    full_seconds = bench_report["full"]["seconds"]
    assert nightly["share_of_stage_by_stage_full"] == nightly["seconds"] / full_seconds


@pytest.mark.slow
def test_the_full_run_is_measured_again_as_one_vault_run(bench_report: dict) -> None:
    full_run = bench_report["full_run"]
    assert full_run["rows"] == bench_report["full"]["stages"]["extract"]["rows"]
    assert list(full_run["stage_seconds"]) == list(STAGES)
    assert full_run["seconds"] > sum(full_run["stage_seconds"].values())
    # What the run and its workers held together was sampled, and the memory target counts it.
    assert full_run["tree_peak_rss_mib"] > max(full_run["worker_peak_rss_mib"].values()) / 2
    targets = {t["target"].strip(): t for t in bench_report["targets"]}
    assert targets["peak RSS < 2 GiB"]["value"] >= full_run["tree_peak_rss_mib"]
    # The end-to-end target and the ratio compare one process with the one-process baseline.
    assert targets["end to end <= 2 x baseline + 15 s"]["value"] == full_run["seconds"]
    baseline = bench_report["baseline"]
    assert baseline["ratio"] == full_run["seconds"] / baseline["seconds"]


@pytest.mark.slow
def test_the_nightly_month_judged_is_the_median_of_three_nights(bench_report: dict) -> None:
    nightly = bench_report["nightly"]
    nights = nightly["nights"]
    assert len(nights) == 3
    tapes = [n["tape"] for n in nights]
    assert tapes == sorted(tapes) and len(set(tapes)) == 3  # three consecutive months
    assert sorted(n["seconds"] for n in nights)[1] == nightly["seconds"]
    assert nightly["tape"] in tapes
    assert nightly["max_peak_rss_mib"] >= nightly["peak_rss_mib"]


@pytest.mark.slow
def test_later_months_follow_the_nights_one_vault_run_each(bench_report: dict) -> None:
    """--later-months delivers more months after the three nights, to show whether a night's
    cost grows as a tenant's deliveries accumulate."""
    later = bench_report["later_months"]
    tapes = [n["tape"] for n in later["nights"]]
    nightly = [n["tape"] for n in bench_report["nightly"]["nights"]]
    assert len(tapes) == 2 and tapes == sorted(tapes) and tapes[0] > nightly[-1]
    seconds = [n["seconds"] for n in later["nights"]]
    assert all(0 < n["transform_seconds"] < n["seconds"] for n in later["nights"])
    # Each landed its month in the size's home, not in the fixed cost's book measured before.
    assert all(n["rows"] > 0 for n in later["nights"])
    assert later["seconds_per_month"] == pytest.approx(seconds[1] - seconds[0])
    assert later["last_median"] == sorted(seconds)[1]
    assert later["share_of_full"] == pytest.approx(
        later["last_median"] / bench_report["full_run"]["seconds"]
    )


@pytest.mark.slow
def test_a_nights_fixed_cost_is_measured_on_a_small_book(bench_report: dict) -> None:
    """Three nights of a 300-loan book with the size's months of history, measured like the
    nights: what any night pays, and so the least a night takes at the end-to-end limit."""
    fixed = bench_report["fixed_night"]
    assert (fixed["loans"], fixed["months"]) == (300, bench_report["months"])
    nights = fixed["nights"]
    assert len(nights) == 3 and len({n["tape"] for n in nights}) == 3
    assert sorted(n["seconds"] for n in nights)[1] == fixed["seconds"]
    assert list(fixed["stage_seconds"]) == list(STAGES)
    assert 0 < fixed["rows"] <= 300  # one month of the small book
    assert fixed["cpu_seconds"] > 0
    assert fixed["cores_busy"] == fixed["cpu_seconds"] / (fixed["seconds"] * os.cpu_count())
    full_run, nightly = bench_report["full_run"], bench_report["nightly"]
    assert fixed["share_of_full"] == fixed["seconds"] / full_run["seconds"]
    assert fixed["of_nightly"] == fixed["seconds"] / nightly["seconds"]
    limit = 2 * bench_report["baseline"]["seconds"] + 15
    assert fixed["ceiling_at_e2e_limit"] == pytest.approx(0.1 * limit)
    assert fixed["under_ceiling"] == (fixed["seconds"] <= fixed["ceiling_at_e2e_limit"])


def test_the_nights_allowed_at_the_e2e_limit_are_a_tenth_of_it(bench: Any) -> None:
    assert bench.night_ceiling_at_e2e_limit(15.0) == pytest.approx(4.5)
    assert bench.night_ceiling_at_e2e_limit(0.0) == pytest.approx(1.5)


def test_later_months_are_generated_to_end_before_the_current_month(bench: Any) -> None:
    """The transform refuses future periods: many later months move the first month back."""
    today = date(2026, 12, 6)
    assert bench.first_month(64, today) == "2021-01"  # ends 2026-04: the usual start
    assert bench.first_month(71, today) == "2021-01"  # ends 2026-11, the month before today
    assert bench.first_month(72, today) == "2020-12"
    assert bench.first_month(88, today) == "2019-08"  # 88 months from 2019-08 end 2026-11


def test_the_change_per_month_is_a_least_squares_slope(bench: Any) -> None:
    assert bench.slope([3.0, 5.0, 7.0]) == pytest.approx(2.0)
    assert bench.slope([10.0, 9.0, 11.0, 10.0]) == pytest.approx(0.2)
    assert bench.slope([4.0]) == 0.0


@pytest.mark.slow
def test_the_baseline_runs_again_after_the_nights_to_check_the_machine(bench_report: dict) -> None:
    """The shares divide runs made minutes apart: the second baseline shows whether the
    machine's speed moved in between, and a move beyond 10 % is attached to their verdicts."""
    baseline = bench_report["baseline"]
    assert baseline["seconds_after_nights"] > 0
    assert baseline["machine_drift"] == pytest.approx(
        baseline["seconds_after_nights"] / baseline["seconds"] - 1
    )
    caveats = {t["target"].strip(): t["caveat"] for t in bench_report["targets"]}
    flagged = abs(baseline["machine_drift"]) > 0.10
    assert (caveats["incremental month < 10 % of full run"] is not None) == flagged
    assert (caveats["the same, one vault run each"] is not None) == flagged
    assert caveats["peak RSS < 2 GiB"] is None


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    """scripts/bench.py as a module."""
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_a_change_of_machine_speed_is_named_beyond_ten_percent(bench: Any) -> None:
    assert bench.drift_note(0.05) is None
    assert bench.drift_note(-0.1) is None
    assert bench.drift_note(0.28) == (
        "the machine ran 28% slower for the later months than for the full run"
    )
    assert "15% faster" in bench.drift_note(-0.15)


def test_a_process_trees_memory_counts_every_process_under_its_root(bench: Any) -> None:
    """What a `vault run` and its workers hold together: the processes under the launcher."""
    hold = "x = bytearray(200 << 20); print('holding', flush=True); input()"
    child = subprocess.Popen(
        [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "holding\n"
        assert bench.tree_rss_kib(os.getpid()) >= 200 << 10  # the child, under this process
        assert bench.tree_rss_kib(child.pid) == 0  # the root itself is not counted
    finally:
        child.kill()
        child.wait()


def test_a_runs_cpu_counts_the_processes_it_waited_for(bench: Any, tmp_path: Path) -> None:
    """A `vault run`'s workers do most of a night's work: the CPU measured for the run is its
    own and theirs. Here the measured process only waits while its child computes."""
    work = "import time; end = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    waits = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {work!r}], check=True)"
    measured = bench.measure([sys.executable, "-c", waits], tmp_path / "cpu.log")
    assert measured.returncode == 0
    assert measured.cpu_seconds >= 0.5
    assert 0 < bench.cores_busy(measured) <= 1
    assert bench.cores_busy(measured) == measured.cpu_seconds / (measured.seconds * os.cpu_count())


def test_the_landing_floor_types_every_field_as_extract_does(
    bench: Any, make_tenant: MakeTenant, small_tapes: list[Path], tmp_path: Path
) -> None:
    """The floor is only a floor if it does the typing extract does: on clean generated tapes
    its table holds exactly the rows and values the parser lands, column for column."""
    tenant = make_tenant()
    tapes = tmp_path / "tapes"
    tapes.mkdir()
    for tape in small_tapes[:3]:
        os.link(tape, tapes / tape.name)
    out = tmp_path / "floor.parquet"
    measured, fields = bench.run_landing_floor(tenant, tapes, out, tmp_path / "floor.log")
    assert measured.returncode == 0 and measured.seconds > 0

    con = duckdb.connect()
    [kind] = file_kinds(tenant.sources[0].layout)
    files = [TextFile(path, path.name) for path in sorted(tapes.iterdir())]
    parsed = parse_files(con, files, kind, "S1", tmp_path / "parsed.parquet")
    assert parsed.quarantine is None
    columns = [c for c in con.table("parsed").columns if not c.startswith("_")]
    columns.remove("line")
    assert fields == len(columns) and con.read_parquet(str(out)).columns == columns
    names = ", ".join(f'"{c}"' for c in columns)
    floor, landed = f"SELECT {names} FROM {literal(out)}", f"SELECT {names} FROM parsed"
    assert con.sql(f"SELECT count(*) FROM ({floor})").fetchone() == (sum(parsed.rows_in.values()),)
    assert (
        con.sql(f"({floor} EXCEPT ALL {landed}) UNION ALL ({landed} EXCEPT ALL {floor})").fetchall()
        == []
    )
