"""Backfill benchmark: deciding to skip 10,000 partitions that are all done, and flow runs made.

Run alone: ``python -m benchmarks.backfill [--partitions N]``.

An archive of N day folders (one tiny file each) and a store holding each day's marker (as a
finished backfill leaves them). Measured, best of three, page cache warm:

1. segflow's planner (``make_plan``): one pass over the archive's folders with ``scandir``,
   one listing of the markers and one read of the marker index;
2. the naive baseline in the same process: per partition, list its files, check that its
   marker exists and read it (one stat + one GET per partition, what a per-partition sensor
   or a run-per-partition scheduler does);
3. the backfill flow on a temporary Prefect server: seconds to decide there is nothing to do,
   and how many flow runs and task runs it created (goal: 1 flow run, never one per partition).

Goals: the decision takes <= 30 s for 10,000 partitions; 1 flow run up front.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import Goal, Target, finish
from segflow.backfill import (
    PartitionResult,
    list_partitions,
    local_files,
    make_plan,
    marker_key,
    partition_identity,
    update_index,
    write_marker,
)
from segflow.config import BackfillParams, StoreConfig
from storage import open_store

TAG = "bench"

#: Seconds for segflow's planner to decide that every partition is done.
PLAN_SECONDS = Target("plan seconds", "<=", 30)
#: Seconds for the backfill flow, on a Prefect server, to decide there is nothing to do.
FLOW_SECONDS = Target("backfill flow seconds", "<=", 30)
#: Flow runs the backfill creates up front: one, never one per partition.
FLOW_RUNS = Target("backfill flow runs", "==", 1)
GOALS = (PLAN_SECONDS, FLOW_SECONDS, FLOW_RUNS)


def build(root: Path, count: int) -> BackfillParams:
    """``count`` day folders with one file each, all marked done in the store."""
    archive, store_dir = root / "archive", root / "store"
    first = datetime.date(2000, 1, 1)
    for i in range(count):
        day = archive / str(first + datetime.timedelta(days=i))
        day.mkdir(parents=True)
        (day / "cam.npy").write_bytes(b"x" * 16)
    store = open_store(store_dir)
    results = [PartitionResult(p.date, p.identity, "done") for p in list_partitions(str(archive))]
    for result in results:
        write_marker(store, TAG, result)
    update_index(store, TAG, add=results)
    store_config = StoreConfig(url=str(store_dir))
    return BackfillParams(archive=str(archive), store=store_config, model_tag=TAG)


def naive_plan(params: BackfillParams) -> int:
    """Per partition: list its files, check its marker exists, read it, compare; return skips."""
    store = open_store(params.store.url)
    skipped = 0
    for entry in sorted(os.scandir(params.archive), key=lambda e: e.name):
        identity = partition_identity(local_files(entry.path))
        key = marker_key(params.model_tag, entry.name)
        if store.exists(key):
            marker = json.loads(store.read_bytes(key))
            skipped += marker["status"] == "done" and marker["identity"] == identity
    return skipped


def best_of(fn: Any, repeats: int = 3) -> tuple[float, Any]:
    """Fastest of ``repeats`` calls, and the last value returned."""
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return min(times), value


def flow_on_server(params: BackfillParams) -> dict[str, float]:
    """Run the backfill flow (all done) on a temporary server; seconds and runs created."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.backfill import backfill

    with prefect_test_harness(server_startup_timeout=120):
        started = time.perf_counter()
        state = backfill(params, return_state=True)
        seconds = time.perf_counter() - started
        with get_client(sync_client=True) as client:
            flow_runs, task_runs = len(client.read_flow_runs()), len(client.read_task_runs())
    assert state.is_completed() and "Nothing to do" in (state.message or ""), state.message
    return {"seconds": seconds, "flow_runs": flow_runs, "task_runs": task_runs}


def goals(partitions: int, plan_seconds: float, flow: dict[str, float] | None) -> list[Goal]:
    """Every goal measured (the flow's only when the flow ran)."""
    checked = [PLAN_SECONDS.check(plan_seconds, qualifier=f"{partitions:,} partitions")]
    if flow is not None:
        checked += [FLOW_SECONDS.check(flow["seconds"]), FLOW_RUNS.check(flow["flow_runs"])]
    return checked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=10_000)
    parser.add_argument(
        "--no-flow", action="store_true", help="Skip the Prefect flow part (and its goals)."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="segflow-bench-backfill-") as tmp:
        started = time.perf_counter()
        params = build(Path(tmp), args.partitions)
        setup = time.perf_counter() - started
        ours, plan = best_of(lambda: make_plan(params))
        naive, naive_skipped = best_of(lambda: naive_plan(params))
        assert plan.skipped == naive_skipped == args.partitions and not plan.todo
        flow = None if args.no_flow else flow_on_server(params)
    result = {
        "partitions": args.partitions,
        "setup_seconds": setup,
        "plan_seconds": ours,
        "naive_seconds": naive,
        "speedup_vs_naive": naive / ours,
        "flow": flow,
    }
    rows = [
        ["segflow plan (scandir + 1 listing + index)", ours, plan.skipped, "-", "-"],
        ["naive (stat + marker GET per partition)", naive, naive_skipped, "-", "-"],
    ]
    if flow is not None:
        rows.append(
            [
                "backfill flow on a Prefect server",
                flow["seconds"],
                args.partitions,
                flow["flow_runs"],
                flow["task_runs"],
            ]
        )
    summary = (
        f"\n{args.partitions:,} partitions, all done; naive/segflow = {naive / ours:.1f}x; "
        f"goal {PLAN_SECONDS} s, {FLOW_RUNS.threshold:g} flow run"
    )
    return finish(
        "backfill",
        result,
        goals(args.partitions, ours, flow),
        (["what", "seconds", "skipped", "flow runs", "task runs"], rows),
        notes=[summary],
    )


if __name__ == "__main__":
    sys.exit(main())
