"""The backfill flow: ingest and predict an archive partitioned by date, one task per day.

Prefect has no backfill command; this flow is segflow's. One flow run per backfill (never one
per partition), a planning task that decides what is already done from one listing of the
archive and one read of the marker index, then one coarse task per partition to run, through
the core's one executor (:func:`segflow.backfill.run_plan`):

* ordered: one task per recording (camera), appending its days in date order, recordings
  side by side; a recording stops at its first failure and a rerun resumes there; then one
  prediction of what landed;
* unordered: at most ``concurrency`` days at a time; failures are listed at the end.

Partition tasks run where ``params`` say (:func:`flows.compute.task_runner`): threads here
(``concurrency`` of them), a local Dask cluster of ``dask_workers`` processes, or the cluster
at ``dask_address``; the executor keeps at most ``concurrency`` partitions in flight either way.

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

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from flows.compute import task_runner
from segflow.backfill import BackfillPlan, BackfillReport, run_plan
from segflow.config import BackfillParams
from tasks.backfill import (
    BackfillProgress,
    partition_submitter,
    plan_task,
    publish_backfill_report,
)


@flow(name="segflow-backfill", log_prints=True)
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
        runner = task_runner(params, threads=params.concurrency)
        run = run_partitions.with_options(task_runner=runner)
        report = run(plan, params, started, flow_run.get_id())
    publish_backfill_report(report, params.model_tag)
    print(report.headline())
    for row in report.failed:
        print(f"failed {row.partition}: {row.message}")
    if report.failed:
        return Failed(message=report.headline(), data=report)
    return Completed(message=report.headline(), data=report)


@flow(name="segflow-backfill-partitions")
def run_partitions(
    plan: BackfillPlan, params: BackfillParams, started: float, run_id: str | None
) -> BackfillReport:
    """Run the plan's partitions as tasks on this flow's task runner (``run_id``: the
    backfill's run, recorded by each partition's prediction)."""
    tracker = BackfillProgress(params.model_tag, len(plan.todo))
    try:
        submitter = partition_submitter(params, run_id)
        return run_plan(plan, params, submitter, on_result=tracker, started=started, run_id=run_id)
    finally:
        tracker.close()
