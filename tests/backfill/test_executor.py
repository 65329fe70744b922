"""The backfill executor with plain submitters (no Prefect, no model): what runs when."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import pytest

from segflow.backfill import (
    Partition,
    PartitionResult,
    Submitter,
    execute_backfill,
    plan_backfill,
    run_plan,
)
from segflow.config import BackfillParams, StoreConfig
from storage import open_store
from tests.backfill.archive import days

Run = Callable[[Partition], PartitionResult]


def _partitions(count: int) -> list[Partition]:
    return [Partition(d, f"arc/{d}", f"id-{d}", 1) for d in days(count)]


def _fake(failing: Iterable[str] = (), crashing: Iterable[str] = ()) -> Run:
    """A partition run: ``failing`` dates come back failed, ``crashing`` ones raise."""
    failing, crashing = set(failing), set(crashing)

    def run(partition: Partition) -> PartitionResult:
        if partition.date in crashing:
            raise RuntimeError("worker lost")
        if partition.date in failing:
            return PartitionResult(partition.date, partition.identity, "failed")
        return PartitionResult(partition.date, partition.identity, "done")

    return run


class Recorder:
    """An immediate submitter (each partition runs when submitted) that records the window."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.submitted: list[str] = []
        self.collected: list[str] = []
        self.widest = 0

    def submit(self, partition: Partition) -> Future[PartitionResult]:
        self.submitted.append(partition.date)
        self.widest = max(self.widest, len(self.submitted) - len(self.collected))
        future: Future[PartitionResult] = Future()
        try:
            future.set_result(self.run(partition))
        except Exception as error:  # noqa: BLE001 - handed to the executor like a crash
            future.set_exception(error)
        return future

    def on_result(self, result: PartitionResult) -> None:
        self.collected.append(result.partition)

    def submitter(self) -> Submitter[Future[PartitionResult]]:
        return Submitter(self.submit, as_completed)


def test_ordered_runs_in_date_order_and_stops_at_the_first_failure() -> None:
    todo = _partitions(6)
    recorder = Recorder(_fake(failing=[todo[2].date, todo[4].date]))
    results = execute_backfill(
        todo, BackfillParams(ordered=True), recorder.submitter(), on_result=recorder.on_result
    )
    assert [r.status for r in results] == ["done", "done", "failed"]
    assert recorder.submitted == [p.date for p in todo[:3]]  # nothing after the failure starts
    assert recorder.collected == recorder.submitted and recorder.widest == 1


@pytest.mark.parametrize("concurrency", [1, 3, 10])  # one at a time, a window, all at once
def test_unordered_keeps_at_most_concurrency_in_flight(concurrency: int) -> None:
    todo = _partitions(7)
    recorder = Recorder(_fake(failing=[todo[1].date]))
    params = BackfillParams(concurrency=concurrency)
    results = execute_backfill(todo, params, recorder.submitter(), on_result=recorder.on_result)
    assert recorder.widest == min(concurrency, len(todo))
    assert [r.partition for r in results] == [p.date for p in todo]  # all ran, in date order
    assert [r.partition for r in results if r.status == "failed"] == [todo[1].date]
    assert sorted(recorder.collected) == [p.date for p in todo]


def test_unordered_with_threads_never_overlaps_more_than_concurrency() -> None:
    """Real concurrency: partitions that take time, counted while they run."""
    lock, running, widest = threading.Lock(), [0], [0]

    def slow(partition: Partition) -> PartitionResult:
        with lock:
            running[0] += 1
            widest[0] = max(widest[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return PartitionResult(partition.date, partition.identity, "done")

    todo = _partitions(12)
    with ThreadPoolExecutor(max_workers=8) as pool:  # more threads than the window
        submitter = Submitter(lambda p: pool.submit(slow, p), as_completed)
        results = execute_backfill(todo, BackfillParams(concurrency=3), submitter)
    assert len(results) == 12 and {r.status for r in results} == {"done"}
    assert 1 <= widest[0] <= 3


@pytest.mark.parametrize("ordered", [False, True])
def test_a_crashed_partition_becomes_a_failed_row(ordered: bool) -> None:
    todo = _partitions(3)
    recorder = Recorder(_fake(crashing=[todo[0].date]))
    results = execute_backfill(todo, BackfillParams(ordered=ordered), recorder.submitter())
    assert results[0].status == "failed" and results[0].message == "task crashed: worker lost"
    assert results[0].mode == ("ordered" if ordered else "unordered")
    assert len(results) == (1 if ordered else 3)  # ordered stops there, unordered carries on


def test_run_plan_dry_run_and_nothing_to_do_submit_nothing(tmp_path: Path) -> None:
    todo = _partitions(2)
    recorder = Recorder(_fake())
    store = StoreConfig(url=str(tmp_path))
    dry = run_plan(
        plan_backfill(todo, {}), BackfillParams(store=store, dry_run=True), recorder.submitter()
    )
    assert dry.dry_run and dry.counts["not run"] == 2 and "Dry run: 2 of 2" in dry.headline()
    done = {p.date: {"identity": p.identity, "status": "done"} for p in todo}
    idle = run_plan(plan_backfill(todo, done), BackfillParams(store=store), recorder.submitter())
    assert idle.counts["skipped"] == 2 and recorder.submitted == []
    assert not open_store(str(tmp_path)).list("backfills")  # no marker, no index


def test_run_plan_records_the_results_in_the_index(tmp_path: Path) -> None:
    todo = _partitions(3)
    recorder = Recorder(_fake(failing=[todo[1].date]))
    params = BackfillParams(store=StoreConfig(url=str(tmp_path)), model_tag="m")
    report = run_plan(plan_backfill(todo, {}), params, recorder.submitter())
    assert report.counts == {"done": 2, "failed": 1, "skipped": 0, "not run": 0}
    index = json.loads(open_store(str(tmp_path)).read_bytes("backfills/m/_index.json"))
    assert {d: m["status"] for d, m in index["partitions"].items()} == {
        todo[0].date: "done",
        todo[1].date: "failed",
        todo[2].date: "done",
    }
