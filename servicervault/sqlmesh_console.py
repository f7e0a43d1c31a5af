"""A silent SQLMesh console that keeps what went wrong.

SQLMesh reports model and audit failures to its console rather than raising them with
detail; the default console draws progress bars on stdout, which a scheduler's log does
not want. This console prints nothing and collects failures for one readable error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlmesh.core.console import NoopConsole
from sqlmesh.utils.errors import NodeAuditsErrors


class CollectingConsole(NoopConsole):
    def __init__(self) -> None:
        super().__init__()
        self.failures: list[str] = []
        # Per model: how often it was built in this transform and the seconds it took, for
        # the run ledger (where transform time goes) and to prove nothing is built twice.
        self.evaluations: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    def update_snapshot_evaluation_progress(
        self,
        snapshot: Any,
        interval: Any,
        batch_idx: int,
        duration_ms: int | None,
        num_audits_passed: int,
        num_audits_failed: int,
        audit_only: bool = False,
        **_: Any,
    ) -> None:
        if not audit_only:
            table = snapshot.model.fully_qualified_table
            name = f"{table.db}.{table.name}"
            self.evaluations[name] += 1
            self.seconds[name] += (duration_ms or 0) / 1000

    def log_failed_models(self, errors: list[Any]) -> None:
        for error in errors:
            model = getattr(error.node, "snapshot_name", str(error.node))
            cause = error.__cause__ or error
            if isinstance(cause, NodeAuditsErrors):
                for audit in cause.errors:
                    self.failures.append(
                        f"{model}: audit {audit.audit_name} failed for {audit.count} row(s)"
                    )
            else:
                self.failures.append(f"{model}: {type(cause).__name__}: {cause}")

    def log_error(self, message: str) -> None:
        self.failures.append(message)

    def describe(self, exc: BaseException | None = None) -> str:
        lines = list(self.failures)
        if exc is not None and not lines:
            lines.append(f"{type(exc).__name__}: {exc}")
        return "transform failed:\n  " + "\n  ".join(lines)
