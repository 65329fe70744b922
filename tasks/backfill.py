"""Prefect tasks for backfills: one planning task, one coarse task per partition, reporting."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed

from segflow.backfill import (
    BackfillPlan,
    BackfillReport,
    Partition,
    PartitionResult,
    Submitter,
    make_plan,
    run_partition,
)
from segflow.backfill.lanes import Lane, LaneResult, run_lane
from segflow.config import BackfillParams
from segflow.progress import StepEvent
from tasks.progress import StepProgress, artifact_key

#: Name of the CLI's partition bar (see :mod:`segflow.progress`).
BAR = "backfill"
#: Above this many rows the final table leaves skipped partitions out.
MAX_ROWS = 500


@task(name="plan-backfill", cache_policy=NO_CACHE)
def plan_task(params: BackfillParams) -> BackfillPlan:
    """List the archive's partitions and decide which to run (one listing, one index read)."""
    return make_plan(params)


@task(
    name="backfill-partition",
    cache_policy=NO_CACHE,
    task_run_name="partition {partition.date}",
)
def partition_task(
    partition: Partition, params: BackfillParams, run_id: str | None
) -> PartitionResult:
    """Ingest and predict one partition; a failure comes back as a ``failed`` result."""
    return run_partition(partition, params, run_id=run_id)


def partition_submitter(
    params: BackfillParams, run_id: str | None
) -> Submitter[PrefectFuture[PartitionResult]]:
    """Start each partition as a :func:`partition_task` (an ordered backfill's recordings as
    :func:`lane_task`) on the flow's task runner."""
    return Submitter(
        submit=lambda partition: partition_task.submit(partition, params, run_id),
        as_completed=as_completed,
        submit_lane=lambda lane: lane_task.submit(lane, params),
    )


@task(
    name="backfill-recording",
    cache_policy=NO_CACHE,
    task_run_name="recording {lane.sequence_id}",
)
def lane_task(lane: Lane, params: BackfillParams) -> LaneResult:
    """Append one recording's days in date order (an ordered backfill's lane)."""
    return run_lane(lane, params)


class BackfillProgress:
    """Counts finished partitions into a progress artifact and the CLI's bar."""

    def __init__(self, model_tag: str, total: int, *, interval: float = 2.0) -> None:
        self.total = max(1, total)
        self.done = 0
        self._steps = StepProgress(
            artifact_key("backfill-progress", model_tag),
            BAR,
            total=total,
            description=f"backfill {model_tag}: {total} partitions",
            interval=interval,
        )

    def __call__(self, result: PartitionResult) -> None:
        """Count ``result``'s partition as finished."""
        self.done += 1
        self._steps(
            StepEvent(frames=1, fraction=self.done / self.total, step=self.done, steps=self.total)
        )

    def close(self) -> None:
        """Record the final count (short of all when an ordered run stopped) and finish the bar."""
        self._steps.close(self.done / self.total)


@task(name="publish-backfill-report", cache_policy=NO_CACHE)
def publish_backfill_report(report: BackfillReport, model_tag: str) -> None:
    """Publish the final table (partition, sequences, frames, status, seconds) as an artifact."""
    rows = report.table()
    if len(rows) > MAX_ROWS:  # thousands of skipped days say nothing; their count is kept
        rows = [r for r in rows if r["status"] != "skipped"]
    create_table_artifact(
        key=artifact_key("backfill", model_tag),
        table=rows,
        description=f"**segflow backfill `{model_tag}`**: {report.headline()}",
    )
