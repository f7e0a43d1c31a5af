"""Peak memory as the ledger records it: the process's own, not what it inherited."""

from __future__ import annotations

import subprocess
import sys

from servicervault.memory import peak_rss_mib

CHILD = (
    "import resource; from servicervault.memory import peak_rss_mib; "
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
