"""Runs stages for a tenant: one lock, one run id, one ledger record per stage.

This is the single entry point a scheduler needs (``vault run --tenant T``). It is safe to
retry: extract lands only new files, transform yields the same build id for the same
inputs and code, publish requires that build to have passed validation, and drop skips a
build that was already dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from servicervault import ledger, usage
from servicervault.config import Tenant
from servicervault.contracts import LOAN_MONTHS
from servicervault.errors import NotReadyError, VaultError
from servicervault.ledger import StageRecord, Stopwatch
from servicervault.stage_worker import WORKER_STAGES, StageWorker

if TYPE_CHECKING:
    from servicervault.stages.publish import Publication

STAGES = ("extract", "transform", "validate", "publish", "drop")

Progress = Callable[[str], None]
Outcome = tuple[int, str, dict[str, Any]]  # rows, message, details for the ledger


def _extract(tenant: Tenant, run_id: str, say: Progress, spare_a_core: bool = False) -> Outcome:
    from servicervault.stages.extract import extract

    results = extract(tenant, say, spare_a_core)
    landed = [r for r in results if r.snapshot_id]
    rows = sum(r.rows_landed for r in results)
    quarantined = sum(r.rows_quarantined for r in results)
    if landed:
        ids = ", ".join(r.snapshot_id or "" for r in landed)
        message = f"landed {rows:,} rows ({quarantined:,} quarantined) as snapshot {ids}"
    else:
        message = "no new files"
    details = {
        "snapshots": [
            {
                "source": r.source,
                "snapshot_id": r.snapshot_id,
                "manifest": r.manifest_key,
                "files": len(r.files),
                "rows_landed": r.rows_landed,
                "rows_quarantined": r.rows_quarantined,
                "already_landed": len(r.already_landed),
            }
            for r in results
        ]
    }
    return rows, message, details


def _transform(
    tenant: Tenant, run_id: str, say: Progress, worker: StageWorker | None = None
) -> Outcome:
    from servicervault.stages.transform import FIRST_PERIOD, TransformResult

    say("building models with SQLMesh")
    if worker:
        result: TransformResult = worker.run(tenant)
    else:
        from servicervault.stages.transform import transform

        result = transform(tenant)
    rows = result.rows.get(LOAN_MONTHS, 0)
    rebuilt = result.rebuilt_from
    if rebuilt is None:
        scope = "nothing new to rebuild"
    elif rebuilt == FIRST_PERIOD:
        scope = "every period rebuilt"
    else:
        scope = f"periods from {rebuilt:%Y-%m} rebuilt"
    message = (
        f"build {result.build_id}: {rows:,} loan-months from "
        f"{len(result.snapshot_ids)} snapshot(s), {len(result.rows)} tables, {scope}"
    )
    if result.removed_tables:
        message += f"; {len(result.removed_tables)} table(s) of replaced model versions removed"
    if result.cleanup_failure:
        message += (
            "; WARNING: the tables of replaced model versions could not be removed "
            f"({result.cleanup_failure}), the next release's build retries"
        )
    details = {
        "build_id": result.build_id,
        "snapshot_ids": result.snapshot_ids,
        "rows": result.rows,
        "changed_models": result.changed_models,
        "model_seconds": result.model_seconds,
        "rebuilt_from": None if rebuilt is None else rebuilt.isoformat(),
        "period_tables": result.period_tables,
        "removed_tables": result.removed_tables,
        "cleanup_failure": result.cleanup_failure,
        **_worker_usage(worker),
    }
    return rows, message, details


def _worker_usage(worker: StageWorker | None) -> dict[str, float | None]:
    """What a stage's worker used, for the stage's record; None when the stage ran in the run's
    own process, whose usage every record has."""
    return {
        "worker_peak_rss_mib": worker.peak_rss_mib if worker else None,
        "worker_cpu_seconds": worker.cpu_seconds if worker else None,
    }


def _current_transform(tenant: Tenant) -> StageRecord:
    record = ledger.last(tenant, "transform", status=None)
    if record is None or record.status != "ok":
        raise NotReadyError(
            f"tenant {tenant.id!r} has no successful transform to work on; run `vault transform`"
        )
    return record


@dataclass
class _Ahead:
    """Work a run does ahead of its stage: the publication written while validation runs in
    its worker. The run discards what its stage did not use (validation failed, say)."""

    publish: bool = False  # whether to prepare the publication during validation
    publication: Publication | None = None

    def take(self, build_id: str, keep_before: date | None) -> Publication | None:
        """The publication written ahead, if it is the one the publish stage would write."""
        publication, wanted = self.publication, (build_id, keep_before)
        if publication and (publication.build_id, publication.keep_before) == wanted:
            self.publication = None
            return publication
        self.discard()
        return None

    def discard(self) -> None:
        if self.publication is not None:
            from servicervault.stages.publish import discard

            discard(self.publication)
            self.publication = None


def _validate(
    tenant: Tenant,
    run_id: str,
    say: Progress,
    worker: StageWorker | None = None,
    ahead: _Ahead | None = None,
) -> Outcome:
    from servicervault.stages.validate import suites_fingerprint, validate

    built = _current_transform(tenant)
    build_id = built.details["build_id"]
    fingerprint = suites_fingerprint()
    checked_from = _unchecked_from(tenant, fingerprint)
    period_tables = built.details.get("period_tables", [])
    scope = _checked_scope(checked_from, period_tables)
    say(f"validating build {build_id} with Great Expectations{scope}")
    args = (tenant, run_id, checked_from, period_tables)
    if worker is None:
        outcome = validate(*args)
    else:
        # The worker validates (GX's work is Python, one core) while this process writes the
        # publication (DuckDB), which goes in place only if validation passes.
        worker.send(*args)
        if ahead is not None and ahead.publish:
            ahead.publication = _prepare_publication(tenant)
        outcome = worker.result()
    details = {
        "build_id": build_id,
        "success": outcome.success,
        "evaluated": outcome.evaluated,
        "failed": len(outcome.failed),
        "suites": fingerprint,
        "checked_from": None if checked_from is None else checked_from.isoformat(),
        "loan_months_checked": outcome.rows_checked.get(LOAN_MONTHS),
        "results_json": str(outcome.results_json),
        "data_docs": str(outcome.data_docs_index),
        **_worker_usage(worker),
    }
    if not outcome.success:
        raise StageFailed(outcome.summary(), details)
    return outcome.evaluated, f"{outcome.evaluated} expectations passed{scope}", details


def _unchecked_from(tenant: Tenant, fingerprint: str) -> date | None:
    """The first period of the period-built tables that no passed validation has checked.

    None (check everything) unless the last passed validation ran the same suites."""
    passed = ledger.last(tenant, "validate")
    if passed is None or passed.details.get("suites") != fingerprint:
        return None
    return _unchanged_before(tenant, "validate", passed.details.get("build_id"))


def _checked_scope(checked_from: date | None, period_tables: list[str]) -> str:
    """How much of the period-built tables a validation checks, for its message."""
    if checked_from is None or not period_tables:
        return ""
    if checked_from == date.max:
        return "; period-built tables: their latest period (nothing rebuilt since validated)"
    return f"; period-built tables: periods from {checked_from:%Y-%m}"


def _to_publish(tenant: Tenant) -> tuple[str, list[str], date | None]:
    """The current build's id and snapshots, and the periods its publication can keep."""
    from servicervault.stages.publish import published_build

    built = _current_transform(tenant)
    keep_before = _unchanged_before(tenant, "publish", published_build(tenant))
    return built.details["build_id"], built.details["snapshot_ids"], keep_before


def _prepare_publication(tenant: Tenant) -> Publication | None:
    """The current build's publication, written ahead; None when that fails (the publish stage
    then publishes, and reports the error if it happens again)."""
    from servicervault.stages.publish import prepare

    try:
        build_id, snapshot_ids, keep_before = _to_publish(tenant)
        # Written beside the validation worker: a publication that keeps the published periods
        # is small, and on one thread it leaves the other core to validation (a nightly month
        # at 12 M: validate 4.2-4.7 -> 3.5 s). A whole one takes both cores, as validating
        # every period takes longer anyway.
        threads = None if keep_before is None else 1
        return prepare(tenant, build_id, snapshot_ids, keep_before, threads)
    except Exception:
        return None


def _publish(tenant: Tenant, run_id: str, say: Progress, ahead: _Ahead | None = None) -> Outcome:
    from servicervault.stages.publish import analytics_path, commit, publish

    build_id, snapshot_ids, keep_before = _to_publish(tenant)
    validated = ledger.last(tenant, "validate", status=None)
    if validated is None or validated.details.get("build_id") != build_id:
        raise NotReadyError(f"build {build_id} has not been validated; run `vault validate`")
    if validated.status != "ok":
        raise NotReadyError(
            f"build {build_id} failed validation; nothing published "
            f"(see {validated.details.get('data_docs', 'the validation report')})"
        )
    prepared = ahead.take(build_id, keep_before) if ahead else None
    if prepared:
        rows = commit(tenant, prepared)
    else:
        rows = publish(tenant, build_id, snapshot_ids, keep_before)
    path = analytics_path(tenant)
    kept = None if keep_before is None else keep_before.isoformat()
    return (
        sum(rows.values()),
        f"published {len(rows)} tables to {path}",
        {
            "build_id": build_id,
            "database": str(path),
            "rows": rows,
            "kept_before": kept,
            "written_during_validation": prepared is not None,
        },
    )


def _unchanged_before(tenant: Tenant, stage: str, build_id: str | None) -> date | None:
    """The period before which nothing was rebuilt since ``stage`` last succeeded on ``build_id``.

    ``stage`` is publish (the build in the analytics file) or validate (the build that last
    passed). Its last ok record for the build worked on the transform recorded just before it;
    the transforms recorded after that one each name the first period they rebuilt. None (every
    period) when that history is incomplete: no such record, the transform before it not that
    build, or a failed transform since (it may have rebuilt some models and not said which), even
    if a later transform came back to the same build. ``date.max`` when nothing was rebuilt since.
    """
    records = ledger.records(tenant)
    done = [
        i
        for i, r in enumerate(records)
        if r.stage == stage and r.status == "ok" and r.details.get("build_id") == build_id
    ]
    transforms = [i for i, r in enumerate(records) if r.stage == "transform"]
    worked_on = [i for i in transforms if done and i < done[-1]]
    if build_id is None or not worked_on:
        return None
    anchor = records[worked_on[-1]]
    if anchor.status != "ok" or anchor.details.get("build_id") != build_id:
        return None
    later = [records[i] for i in transforms if i > worked_on[-1]]
    if any(r.status != "ok" or "rebuilt_from" not in r.details for r in later):
        return None
    rebuilt = [r.details["rebuilt_from"] for r in later if r.details["rebuilt_from"]]
    return min((date.fromisoformat(d) for d in rebuilt), default=date.max)


def _drop(tenant: Tenant, run_id: str, say: Progress) -> Outcome:
    from servicervault.stages.drop import drop

    result = drop(tenant)
    rows = sum(f["rows"] for f in result.files)
    verb = "wrote" if result.created else "already dropped this build:"
    return (
        rows,
        f"{verb} {result.manifest_key}",
        {"drop_id": result.drop_id, "manifest": result.manifest_key, "created": result.created},
    )


StageFunction = Callable[[Tenant, str, Progress], Outcome]
_STAGE_FUNCTIONS: dict[str, StageFunction] = {
    "extract": _extract,
    "transform": _transform,
    "validate": _validate,
    "publish": _publish,
    "drop": _drop,
}


class StageFailed(VaultError):
    """A stage ran and found a problem; ``details`` still go to the ledger."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


def run_stages(
    tenant: Tenant, stages: tuple[str, ...] = STAGES, progress: Progress | None = None
) -> list[StageRecord]:
    """Run ``stages`` in order under the tenant lock; stop at the first failure."""
    say = progress or (lambda _msg: None)
    records: list[StageRecord] = []
    ahead = _Ahead(publish=("validate", "publish") in pairwise(stages))
    with ledger.tenant_lock(tenant), _workers() as workers:
        run_id = ledger.new_run_id()
        try:
            for stage, following in zip(stages, (*stages[1:], None), strict=True):
                if following in WORKER_STAGES:
                    workers[following] = StageWorker(following, tenant)
                function = _STAGE_FUNCTIONS[stage]
                if stage in workers:
                    function = partial(function, worker=workers[stage])
                elif stage == "extract" and following in workers:
                    # The transform's worker imports SQLMesh beside extract.
                    function = partial(function, spare_a_core=True)
                if stage in ("validate", "publish"):
                    function = partial(function, ahead=ahead)
                record = _run_one(tenant, stage, run_id, say, function)
                records.append(record)
                if record.status != "ok":
                    break
        finally:
            ahead.discard()
    return records


@contextmanager
def _workers() -> Iterator[dict[str, StageWorker]]:
    """The run's stage workers (see :mod:`servicervault.stage_worker`), closed when it ends.

    A transform or validate stage that follows another stage of the run gets a worker when that
    stage starts: SQLMesh then imports while extract works, and Great Expectations while
    transform does, not both beside extract. A stage that runs first runs in this process. A
    run that ends normally waits for what its workers do after their result (validation's
    reports), and reports it if that failed."""
    workers: dict[str, StageWorker] = {}
    try:
        yield workers
        for worker in workers.values():
            worker.finish()
    finally:
        for worker in workers.values():
            worker.close()


def _run_one(
    tenant: Tenant, stage: str, run_id: str, say: Progress, function: StageFunction
) -> StageRecord:
    watch = Stopwatch()
    try:
        rows, message, details = function(tenant, run_id, say)
        status = "ok"
    except StageFailed as exc:
        rows, message, details, status = 0, str(exc), exc.details, "failed"
    except VaultError as exc:
        rows, message, details, status = 0, str(exc), {}, "failed"
    except Exception as exc:
        # A bug, not bad input: record it so the ledger is complete, then let it surface.
        ledger.append(
            tenant,
            StageRecord(
                run_id,
                tenant.id,
                stage,
                "failed",
                watch.started_at,
                watch.seconds,
                0,
                f"internal error: {exc!r}",
                {},
            ),
        )
        raise
    # The run's own process, so far; a stage run in a worker records the worker's beside it.
    details["process_peak_rss_mib"] = usage.peak_rss_mib()
    details["process_cpu_seconds"] = usage.cpu_seconds()
    record = StageRecord(
        run_id, tenant.id, stage, status, watch.started_at, watch.seconds, rows, message, details
    )
    ledger.append(tenant, record)
    return record
