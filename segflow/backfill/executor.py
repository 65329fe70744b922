"""Running a backfill plan: the one executor, whatever starts the partitions.

The executor does not start partitions itself; a :class:`Submitter` does. The backfill flow
passes one that submits a Prefect task per partition; plain Python (tests, scripts) passes
:func:`thread_submitter`. Either way the executor decides what runs when:

* **ordered**: with a submitter that starts lanes (``submit_lane``), one lane per recording
  (:mod:`.lanes`): each recording's days in date order, different recordings at once (at
  most ``params.concurrency``), a lane stopping at its first failure; then one prediction of
  what landed. Without one, one partition at a time in date order; the run stops at the
  first failure, because later days continue that day's sequences (a rerun resumes there);
* **unordered**: at most ``params.concurrency`` partitions in flight (a sliding window);
  failures are listed and the others carry on.

A partition whose future raises (a crashed worker: :func:`run_partition` records its own
errors) becomes a ``failed`` row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from segflow.backfill.lanes import Lane, LaneResult, fold_days, plan_lanes, run_lane
from segflow.backfill.listing import Partition
from segflow.backfill.markers import update_index
from segflow.backfill.partition import PartitionResult, now, run_partition
from segflow.backfill.plan import BackfillPlan
from segflow.backfill.report import BackfillReport
from segflow.config import BackfillParams
from storage.base import Store

__all__ = [
    "PartitionFuture",
    "Submitter",
    "begin",
    "execute_backfill",
    "run_plan",
    "thread_submitter",
]


class PartitionFuture(Protocol):
    """A started partition: a Prefect future, a :class:`concurrent.futures.Future`, ..."""

    def result(self) -> PartitionResult:
        """Wait for the partition; return its result or raise what crashed it."""
        ...


F = TypeVar("F", bound=PartitionFuture)
OnResult = Callable[[PartitionResult], None]


@dataclass(frozen=True)
class Submitter(Generic[F]):
    """How partitions start and how the executor waits for them.

    Attributes:
        submit: Starts one partition and returns its future at once.
        as_completed: Yields the given futures as they finish, e.g.
            :func:`prefect.futures.as_completed` or :func:`concurrent.futures.as_completed`.
    """

    submit: Callable[[Partition], F]
    as_completed: Callable[[list[F]], Iterable[F]]
    #: Starts one lane (:func:`~segflow.backfill.lanes.run_lane`) and returns a future of its
    #: :class:`~segflow.backfill.lanes.LaneResult`; None: ordered days run one by one.
    submit_lane: Callable[[Lane], Any] | None = None


def thread_submitter(
    pool: futures.Executor, params: BackfillParams, *, run_id: str | None = None
) -> Submitter[futures.Future[PartitionResult]]:
    """A submitter running :func:`run_partition` in ``pool`` (plain Python, no orchestrator).

    Args:
        pool: Where partitions run; the executor keeps at most ``params.concurrency`` of them
            in flight, so a pool of that many workers is enough.
        params: The backfill's parameters.
        run_id: Recorded by each partition's prediction as its run.
    """
    return Submitter(
        submit=lambda partition: pool.submit(run_partition, partition, params, run_id=run_id),
        as_completed=futures.as_completed,
        submit_lane=lambda lane: pool.submit(run_lane, lane, params),
    )


def execute_backfill(
    todo: Sequence[Partition],
    params: BackfillParams,
    submitter: Submitter[F],
    *,
    on_result: OnResult | None = None,
    run_id: str | None = None,
) -> list[PartitionResult]:
    """Run the partitions ``todo`` through ``submitter``, ordered or not as ``params`` say.

    Args:
        todo: The partitions to run, in date order (:attr:`BackfillPlan.todo`).
        params: ``ordered`` and ``concurrency`` decide what runs when.
        submitter: Starts partitions (or lanes) and waits for them.
        on_result: Called with each result as it comes in (progress).
        run_id: Recorded by an ordered run's final prediction as its run.

    Returns:
        The results of the partitions that ran, in date order (an ordered run that stopped
        at a failure has none for the days after it).

    >>> from concurrent.futures import Future
    >>> def done(partition: Partition) -> Future[PartitionResult]:
    ...     future: Future[PartitionResult] = Future()
    ...     failed = partition.date == "2026-01-02"
    ...     future.set_result(PartitionResult(partition.date, "i", "failed" if failed else "done"))
    ...     return future
    >>> days = [Partition(f"2026-01-0{d}", "", "i", 1) for d in (1, 2, 3)]
    >>> ordered = BackfillParams(ordered=True)
    >>> [r.status for r in execute_backfill(days, ordered, Submitter(done, futures.as_completed))]
    ['done', 'failed']
    """
    notify: OnResult = on_result or (lambda result: None)
    mode = "ordered" if params.ordered else "unordered"
    if params.ordered and submitter.submit_lane is not None:
        return _by_recording(todo, params, submitter.submit_lane, notify, run_id)
    if params.ordered:
        return _in_order(todo, submitter, mode, notify)
    return _window(todo, params.concurrency, submitter, mode, notify)


def begin(params: BackfillParams, plan: BackfillPlan) -> Store:
    """Prepare the store before partitions run; return it.

    Forgets the planned partitions in the index (a crash leaves them to their markers), and
    creates the store's root groups once here, because concurrent first ingests into an empty
    store race on creating them.
    """
    from storage.sequences import SequenceRepository

    store = params.store.open()
    SequenceRepository(store).ensure_root()
    update_index(store, params.model_tag, drop=[p.date for p in plan.todo])
    return store


def run_plan(
    plan: BackfillPlan,
    params: BackfillParams,
    submitter: Submitter[F],
    *,
    on_result: OnResult | None = None,
    started: float | None = None,
    run_id: str | None = None,
) -> BackfillReport:
    """Run ``plan`` (nothing for a dry run): prepare the store, execute, record, report.

    Args:
        plan: What to run (:func:`~segflow.backfill.plan.make_plan`).
        params: The backfill's parameters.
        submitter: Starts partitions and waits for them.
        on_result: Called with each result as it comes in (progress).
        started: ``time.perf_counter()`` when the backfill started (default: now), so the
            report's seconds include the planning.
        run_id: As for :func:`execute_backfill`.
    """
    started = time.perf_counter() if started is None else started
    if params.dry_run or not plan.todo:
        return BackfillReport.build(
            plan, [], seconds=time.perf_counter() - started, dry_run=params.dry_run
        )
    store = begin(params, plan)
    results = execute_backfill(plan.todo, params, submitter, on_result=on_result, run_id=run_id)
    update_index(store, params.model_tag, add=results)
    return BackfillReport.build(plan, results, seconds=time.perf_counter() - started)


def _by_recording(
    todo: Sequence[Partition],
    params: BackfillParams,
    submit_lane: Callable[[Lane], Any],
    notify: OnResult,
    run_id: str | None,
) -> list[PartitionResult]:
    """Lanes of recordings at once, then one prediction, then a marker per finished day."""
    from segflow.backfill.markers import write_marker
    from segflow.backfill.partition import predict_params_for
    from segflow.landing import predict_landed
    from segflow.sources.discover import discover

    started = time.perf_counter()
    options = params.store.resolved_options()
    lanes = plan_lanes({p.date: discover([p.uri], storage_options=options) for p in todo})
    outcomes = fold_days(todo, lanes, _run_lanes(lanes, params.concurrency, submit_lane))
    landed = sorted({s for o in outcomes if o.status == "landed" for s in o.sequences})
    problem, predicted = "", False
    if params.predict and landed:
        report, problem = predict_landed(landed, predict_params_for(params), run_id)
        predicted = report is not None  # a day's new frames: what the continuation streams
    store, results = params.store.open(), []
    seconds = time.perf_counter() - started
    for partition, outcome in zip(todo, outcomes, strict=True):
        if outcome.status == "incomplete":
            continue  # not run: no marker, a rerun runs it
        failed = outcome.status == "failed" or bool(problem)
        result = PartitionResult(
            partition.date,
            partition.identity,
            "failed" if failed else "done",
            sequences=outcome.sequences,
            frames=outcome.frames,
            predicted=outcome.frames if predicted else 0,
            seconds=seconds,
            message=outcome.message or problem,
            mode="ordered",
            finished=now(),
        )
        write_marker(store, params.model_tag, result)
        results.append(result)
        notify(result)
    return results


def _run_lanes(
    lanes: Sequence[Lane], concurrency: int, submit_lane: Callable[[Lane], Any]
) -> list[LaneResult]:
    """Every lane's result, at most ``concurrency`` lanes in flight (oldest waited for first)."""
    results: list[LaneResult] = []
    in_flight: list[tuple[Lane, Any]] = []
    for lane in lanes:
        in_flight.append((lane, submit_lane(lane)))
        if len(in_flight) >= concurrency:
            results.append(_lane_outcome(*in_flight.pop(0)))
    results.extend(_lane_outcome(lane, future) for lane, future in in_flight)
    return results


def _lane_outcome(lane: Lane, future: Any) -> LaneResult:
    """The lane's result; one whose future raised (a crash) fails its first day."""
    from segflow.ingest import IngestResult

    try:
        result: LaneResult = future.result()
        return result
    except Exception as error:  # noqa: BLE001 - a crashed lane is a failed day, not the end
        first = lane.steps[0]
        crashed = IngestResult(
            first.uri, lane.sequence_id, "failed", message=f"task crashed: {error}"
        )
        return LaneResult(lane.sequence_id, ((first.date, crashed),))


def _in_order(
    todo: Sequence[Partition], submitter: Submitter[F], mode: str, notify: OnResult
) -> list[PartitionResult]:
    results: list[PartitionResult] = []
    for partition in todo:
        results.append(_outcome(submitter.submit(partition), partition, mode))
        notify(results[-1])
        if results[-1].status == "failed":
            break  # later days continue this one's sequences: they must wait for a fix
    return results


def _window(
    todo: Sequence[Partition],
    concurrency: int,
    submitter: Submitter[F],
    mode: str,
    notify: OnResult,
) -> list[PartitionResult]:
    pending: dict[F, Partition] = {}
    results: list[PartitionResult] = []

    def collect(future: F) -> None:
        results.append(_outcome(future, pending.pop(future), mode))
        notify(results[-1])

    for partition in todo:
        pending[submitter.submit(partition)] = partition
        if len(pending) >= concurrency:
            collect(next(iter(submitter.as_completed(list(pending)))))
    for future in submitter.as_completed(list(pending)):
        collect(future)
    return sorted(results, key=lambda r: r.partition)


def _outcome(future: PartitionFuture, partition: Partition, mode: str) -> PartitionResult:
    """The partition's result; one whose future raised (a crash) becomes a failed row."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - a crashed partition is a row, not the end
        return PartitionResult(
            partition.date,
            partition.identity,
            "failed",
            message=f"task crashed: {error}",
            mode=mode,
            finished=now(),
        )
