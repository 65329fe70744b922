"""The backfill flow: ingest and predict an archive partitioned by date, one task per day.

Prefect has no backfill command; this flow is segflow's. One flow run per backfill (never one
per partition), a planning task that decides what is already done from one listing of the
archive and one read of the marker index, then one coarse task per partition to run, through
the core's one executor (:func:`segflow.backfill.run_plan`):

* ordered: days in date order, each continuing the cameras' sequences from the day before;
  the run stops at the first failure and a rerun resumes there;
* unordered: at most ``concurrency`` days at a time; failures are listed at the end.

A progress artifact counts finished partitions; a table artifact lists every partition
(partition, sequences, frames, status, seconds). The state's data is the
:class:`~segflow.backfill.BackfillReport`.

Deploy or run by path: ``flows/backfill.py:backfill``.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from segflow.backfill import BackfillPlan, BackfillReport, run_plan
from segflow.config import BackfillParams
from tasks.backfill import (
    BackfillProgress,
    partition_submitter,
    plan_task,
    publish_backfill_report,
)


@flow(
    name="segflow-backfill",
    # Threads are created lazily; the executor keeps at most `concurrency` partitions in flight.
    # Prefect's annotation wants a TaskRunner of plain PrefectFutures (the type is invariant).
    task_runner=ThreadPoolTaskRunner(max_workers=32),  # type: ignore[arg-type]
    log_prints=True,
)
def backfill(params: BackfillParams = BackfillParams()) -> State:
    """Backfill the archive's partitions between ``params.start`` and ``params.end``.

    Skips partitions already done for the same files and model tag (unless ``force``);
    ``dry_run`` only lists what would run. Ends Failed, after publishing its table, if any
    partition failed; either way the state's data is the :class:`BackfillReport`.
    """
    started = time.perf_counter()
    plan = plan_task(params)
    if params.dry_run or not plan.todo:
        report = BackfillReport.build(
            plan, [], seconds=time.perf_counter() - started, dry_run=params.dry_run
        )
    else:
        report = _run(plan, params, started)
    publish_backfill_report(report, params.model_tag)
    print(report.headline())
    for row in report.failed:
        print(f"failed {row.partition}: {row.message}")
    if report.failed:
        return Failed(message=report.headline(), data=report)
    return Completed(message=report.headline(), data=report)


def _run(plan: BackfillPlan, params: BackfillParams, started: float) -> BackfillReport:
    tracker = BackfillProgress(params.model_tag, len(plan.todo))
    try:
        submitter = partition_submitter(params, flow_run.get_id())
        return run_plan(plan, params, submitter, on_result=tracker, started=started)
    finally:
        tracker.close()
