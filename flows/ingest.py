"""The ingest flow: land sources in the Zarr store, in coarse tasks of whole sources.

Tasks run where ``params`` say (:func:`flows.compute.task_runner`): threads in this process,
a local Dask cluster of ``dask_workers`` processes, or the cluster at ``dask_address``.
New sources go in a few groups per worker (a Dask task costs the orchestrator 100-400 ms,
as much as hundreds of small recordings); appends go one task per sequence, its sources in
order, different sequences at once.

Deploy or run by path: ``flows/ingest.py:ingest``.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from flows.compute import task_runner
from segflow.config import IngestParams
from segflow.ingest import IngestReport, IngestResult
from segflow.ingest.batch import by_sequence, group_sources, in_input_order
from tasks.ingest import (
    discover_sources,
    group_label,
    ingest_sources_task,
    publish_summary,
)

#: Tasks at once on the thread runner (no Dask options).
THREADS = 2
#: Small sources per task at least, on Dask: a Dask task costs the orchestrator 100-400 ms,
#: about what 16 small recordings take to ingest.
DASK_MIN_GROUP = 16


@flow(
    name="segflow-ingest",
    log_prints=True,
    # Prefect's annotation wants a TaskRunner of plain PrefectFutures (the type is invariant).
    task_runner=ThreadPoolTaskRunner(max_workers=THREADS),  # type: ignore[arg-type]
)
def ingest(params: IngestParams) -> State:
    """Ingest every source in ``params`` into the store.

    Skips unchanged complete sequences, resumes interrupted ones, appends when asked. The
    state's data is the run's :class:`~segflow.ingest.IngestReport`; the run ends Failed
    (after publishing its summary, and still with the report) if any source failed.
    """
    started = time.perf_counter()
    pairs = discover_sources(params)
    results: list[IngestResult] = []
    if pairs and params.on_dask:  # a subflow on the cluster's runner
        runner = task_runner(params, threads=THREADS)
        results = ingest_pairs.with_options(task_runner=runner)(pairs, params)
    elif pairs:  # in this flow's threads: a subflow run would cost ~1.5 s for nothing
        results = _run_groups(pairs, params)
    report = IngestReport.build(results, seconds=time.perf_counter() - started)
    publish_summary(report)
    if report.failed:
        return Failed(message=report.failure_message(), data=report)
    return Completed(data=report)


@flow(name="segflow-ingest-sources")
def ingest_pairs(pairs: list[tuple[str, str]], params: IngestParams) -> list[IngestResult]:
    """Ingest ``pairs`` on the flow's task runner; results in the order of ``pairs``."""
    return _run_groups(pairs, params)


def _run_groups(pairs: list[tuple[str, str]], params: IngestParams) -> list[IngestResult]:
    # Appends: one task per sequence, its sources in order; new sources: a few per worker.
    if params.append:
        groups = by_sequence(pairs)
    elif params.on_dask:
        groups = group_sources(pairs, workers=_cluster_workers(), min_size=DASK_MIN_GROUP)
    else:
        groups = group_sources(pairs, workers=THREADS)
    futures = [ingest_sources_task.submit(g, params, group_label(g)) for g in groups]
    return in_input_order(pairs, [r for future in futures for r in future.result()])


def _cluster_workers() -> int:
    """Worker threads of the Dask cluster this flow's task runner is connected to, now."""
    context = FlowRunContext.get()
    client = getattr(getattr(context, "task_runner", None), "client", None)
    if client is None:
        raise RuntimeError("Expected a Dask task runner with a client; got none.")
    return max(1, sum(client.nthreads().values()))
