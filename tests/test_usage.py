"""What the ledger records a process used: its own peak memory, not what it inherited, and its
CPU time on every thread."""

from __future__ import annotations

import resource
import subprocess
import sys

import duckdb

from servicervault.usage import cpu_seconds, peak_rss_mib

CHILD = (
    "import resource; from servicervault.usage import peak_rss_mib; "
    "print(peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def test_a_process_started_by_a_large_one_reports_its_own_peak() -> None:
    ballast = bytearray(400 << 20)  # 400 MiB, touched, so it is resident
    assert peak_rss_mib() >= 400
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    own, inherited = (float(x) for x in out.stdout.split())
    del ballast
    assert inherited >= 400  # getrusage carries the parent's peak across fork and exec
    assert own < 200  # a Python interpreter with one small import


def test_cpu_time_counts_every_thread_of_the_process() -> None:
    """DuckDB works on threads of its own beside the calling one; their CPU is the stage's too."""
    with duckdb.connect(config={"threads": 2}) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(30000000)")
        before, thread_before = cpu_seconds(), resource.getrusage(resource.RUSAGE_THREAD)
        con.execute("SELECT sum(hash(i * 7 + 1)) FROM t").fetchall()  # a scan on both threads
        thread_after = resource.getrusage(resource.RUSAGE_THREAD)
    used = cpu_seconds() - before
    this_thread = (thread_after.ru_utime + thread_after.ru_stime) - (
        thread_before.ru_utime + thread_before.ru_stime
    )
    assert used > this_thread + 0.05  # DuckDB's other thread worked too
