"""The backfill flow: ingest and predict an archive partitioned by date, one task per day.

Prefect has no backfill command; this flow is segflow's. One flow run per backfill (never one
per partition), a planning task that decides what is already done from one listing of the
archive and one read of the marker index, then one coarse task per partition to run:

* ordered: days in date order, each continuing the cameras' sequences from the day before;
  the run stops at the first failure and a rerun resumes there;
* unordered: at most ``concurrency`` days at a time; failures are listed at the end.

A progress artifact counts finished partitions; a table artifact lists every partition
(partition, sequences, frames, status, seconds).

Deploy or run by path: ``flows/backfill.py:backfill``.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from segflow.backfill import BackfillReport, Partition, PartitionResult, begin, update_index
from segflow.config import BackfillParams
from tasks.backfill import BackfillProgress, partition_task, plan_task, publish_backfill_report


@flow(
    name="segflow-backfill",
    # Threads are created lazily; the flow keeps at most `concurrency` partitions in flight.
    task_runner=ThreadPoolTaskRunner(max_workers=32),
    log_prints=True,
)
def backfill(params: BackfillParams = BackfillParams()) -> State:
    """Backfill the archive's partitions between ``params.start`` and ``params.end``.

    Skips partitions already done for the same files and model tag (unless ``force``);
    ``dry_run`` only lists what would run. Ends Failed, after publishing its table, if any
    partition failed.
    """
    started = time.perf_counter()
    plan = plan_task(params)
    if params.dry_run or not plan.todo:
        report = BackfillReport.build(
            plan, [], seconds=time.perf_counter() - started, dry_run=params.dry_run
        )
        return _finish(report, params)
    store = begin(params, plan)
    tracker = BackfillProgress(params.model_tag, len(plan.todo))
    try:
        run = _run_ordered if params.ordered else _run_unordered
        results = run(plan.todo, params, tracker)
    finally:
        tracker.close()
    update_index(store, params.model_tag, add=results)
    report = BackfillReport.build(plan, results, seconds=time.perf_counter() - started)
    return _finish(report, params)


def _finish(report: BackfillReport, params: BackfillParams) -> State:
    publish_backfill_report(report, params.model_tag)
    print(report.headline())
    for row in report.failed:
        print(f"failed {row.partition}: {row.message}")
    if report.failed:
        return Failed(message=report.headline(), data=report.to_json())
    return Completed(message=report.headline(), data=report.to_json())


def _run_ordered(
    todo: list[Partition], params: BackfillParams, tracker: BackfillProgress
) -> list[PartitionResult]:
    results: list[PartitionResult] = []
    for partition in todo:
        results.append(PartitionResult.from_json(partition_task(partition, params, flow_run.get_id())))
        tracker(results[-1])
        if results[-1].status == "failed":
            break  # later days continue this one's sequences: they must wait for a fix
    return results


def _run_unordered(
    todo: list[Partition], params: BackfillParams, tracker: BackfillProgress
) -> list[PartitionResult]:
    """Keep at most ``params.concurrency`` partition tasks in flight (a sliding window)."""
    run_id = flow_run.get_id()
    pending: dict[PrefectFuture[Any], Partition] = {}
    results: list[PartitionResult] = []

    def collect(future: PrefectFuture[Any]) -> None:
        results.append(_result(future, pending.pop(future)))
        tracker(results[-1])

    for partition in todo:
        pending[partition_task.submit(partition, params, run_id)] = partition
        if len(pending) >= params.concurrency:
            collect(next(as_completed(list(pending))))
    for future in as_completed(list(pending)):
        collect(future)
    return sorted(results, key=lambda r: r.partition)


def _result(future: PrefectFuture[Any], partition: Partition) -> PartitionResult:
    """The task's result; a crashed task (it records its own errors) becomes a failed row."""
    value = future.result(raise_on_failure=False)
    if isinstance(value, dict):
        return PartitionResult.from_json(value)
    return PartitionResult(partition.date, partition.identity, "failed", message=f"task crashed: {value}")
