"""What this process has used, for the run ledger: its peak memory and its CPU time."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB, since it started its current program.

    ``getrusage``'s ``ru_maxrss`` is not that on Linux: a child inherits its parent's peak at
    fork and keeps it across exec, so a worker spawned by a 500 MiB run would report at least
    500 MiB. ``VmHWM`` belongs to the program's own address space; ``ru_maxrss`` is the fallback
    where there is no ``/proc``."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def cpu_seconds() -> float:
    """CPU seconds this process has used so far, on every thread (DuckDB's among them), in user
    and kernel mode. A run's stages keep both cores of a small machine busy, so a stage is only
    shortened by taking CPU from it; this says where that CPU goes."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
