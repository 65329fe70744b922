"""The ingest flow: land sources in the Zarr store, in coarse tasks of whole sources.

Deploy or run by path: ``flows/ingest.py:ingest``.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from segflow.config import IngestParams
from segflow.ingest import IngestReport, IngestResult
from segflow.ingest.batch import group_sources
from tasks.ingest import (
    discover_sources,
    group_label,
    ingest_sources_task,
    publish_summary,
)

#: Sources ingested at once by the thread runner.
WORKERS = 2


@flow(
    name="segflow-ingest",
    # Prefect's annotation wants a TaskRunner of plain PrefectFutures (the type is invariant).
    task_runner=ThreadPoolTaskRunner(max_workers=WORKERS),  # type: ignore[arg-type]
    log_prints=True,
)
def ingest(params: IngestParams) -> State:
    """Ingest every source in ``params`` into the store.

    Skips unchanged complete sequences, resumes interrupted ones, appends when asked. The
    state's data is the run's :class:`~segflow.ingest.IngestReport`; the run ends Failed
    (after publishing its summary, and still with the report) if any source failed.
    """
    started = time.perf_counter()
    pairs = discover_sources(params)
    if params.append or not params.on_dask:
        results = _run_sources(pairs, params)
    else:
        results = ingest_on_dask.with_options(task_runner=_dask_runner())(pairs, params)
    report = IngestReport.build(results, seconds=time.perf_counter() - started)
    publish_summary(report)
    if report.failed:
        return Failed(message=report.failure_message(), data=report)
    return Completed(data=report)


def _run_sources(
    pairs: list[tuple[str, str]], params: IngestParams, workers: int = WORKERS
) -> list[IngestResult]:
    if not pairs:
        return []
    if params.append:  # appends to one sequence must land in order: one task, in order
        return ingest_sources_task(pairs, params, group_label(pairs))
    groups = group_sources(pairs, workers=workers)
    futures = [ingest_sources_task.submit(g, params, group_label(g)) for g in groups]
    return [result for future in futures for result in future.result()]


def _dask_runner() -> Any:
    from prefect_dask import DaskTaskRunner

    # Processes, not threads: decoding and encoding hold the GIL in places.
    return DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})


@flow(name="segflow-ingest-dask")
def ingest_on_dask(pairs: list[tuple[str, str]], params: IngestParams) -> list[IngestResult]:
    """Ingest ``pairs`` on a Dask cluster (a local one unless configured)."""
    return _run_sources(pairs, params)
