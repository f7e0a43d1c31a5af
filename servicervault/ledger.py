"""The run ledger: one JSON line per stage execution, per tenant.

Schedulers retry; the ledger is how a retry (and a person) knows what already happened.
It is also the record ``publish`` consults: only a build that ``validate`` passed may be
published. Records never contain secrets, only ids, counts, timings and paths.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servicervault.config import Tenant
from servicervault.errors import VaultError


class TenantBusyError(VaultError):
    """Another vault process holds this tenant's lock."""


@dataclass
class StageRecord:
    run_id: str
    tenant: str
    stage: str
    status: str  # ok | failed
    started_at: str
    seconds: float
    rows: int = 0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def new_run_id() -> str:
    """Sortable, unique enough for one tenant: UTC time to the microsecond."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def ledger_path(tenant: Tenant) -> Path:
    return tenant.home / "runs.jsonl"


def append(tenant: Tenant, record: StageRecord) -> None:
    path = ledger_path(tenant)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(asdict(record), sort_keys=True) + "\n")


def records(tenant: Tenant) -> list[StageRecord]:
    path = ledger_path(tenant)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [StageRecord(**json.loads(line)) for line in lines if line.strip()]


def last(tenant: Tenant, stage: str, status: str | None = "ok") -> StageRecord | None:
    for record in reversed(records(tenant)):
        if record.stage == stage and (status is None or record.status == status):
            return record
    return None


@contextmanager
def tenant_lock(tenant: Tenant) -> Iterator[None]:
    """One vault process per tenant at a time, so retries and cron overlaps cannot interleave."""
    tenant.home.mkdir(parents=True, exist_ok=True)
    with (tenant.home / "lock").open("a+") as fh:  # "w" would wipe the holder's pid
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TenantBusyError(
                f"tenant {tenant.id!r} is busy: another vault process is running for it"
            ) from None
        fh.truncate(0)
        fh.write(str(os.getpid()))
        fh.flush()
        yield


class Stopwatch:
    def __init__(self) -> None:
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self._t0, 3)
