"""The predict flow: stream stored sequences through a trained model into the store.

Without Dask options the whole pass is one task in this process. With them
(``dask_address`` or ``dask_workers``), the selection is split into one shard per worker,
balanced by frames, and each shard is one coarse task on the cluster (Prefect's Dask runner
costs 100-400 ms a task: never one per sequence), placed on a worker of its own
(:func:`~flows.compute.placed_on`: elsewhere only if that worker is gone). This flow holds
the tag's lock while the shards run; each shard is a durable run of its own, so a shard whose
worker died is run again on another worker and resumes from its checkpoint. The report sums
the shards, names the retried ones and says where each ran.

Deploy or run by path: ``flows/predict.py:predict``.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from flows.compute import cluster_workers, placed_on, task_runner
from segflow.config import PredictParams
from segflow.predicting import PredictReport, hold_tag, merge_reports
from tasks.predict import (
    plan_shards_task,
    predict_shard_task,
    predict_task,
    publish_predict_report,
)


@flow(name="segflow-predict")
def predict(params: PredictParams) -> PredictReport:
    """Write predictions of the model ``params.model_tag`` to ``predictions/<tag>/``.

    Resumes an interrupted pass, continues grown sequences from their saved LSTM state, skips
    sequences already predicted by the same model. On Dask, one shard per worker.
    """
    run_id = flow_run.get_id()
    if params.on_dask:
        started = time.monotonic()
        with hold_tag(params, run_id or "segflow-predict"):
            runner = task_runner(params)
            reports = predict_shards.with_options(task_runner=runner)(params, run_id)
        report = merge_reports(reports, seconds=time.monotonic() - started)
    else:
        report = predict_task(params, run_id)
    publish_predict_report(report)
    return report


@flow(name="segflow-predict-shards")
def predict_shards(params: PredictParams, run_id: str | None) -> list[PredictReport]:
    """Plan one shard per worker of the flow's cluster; predict each as one task there."""
    context = FlowRunContext.get()
    workers = cluster_workers(context.task_runner if context else None)
    count = params.dask_workers or len(workers) or 1
    shards = plan_shards_task(params, count)
    owner = run_id or "segflow-predict"
    futures = []
    for shard in shards:
        with placed_on(workers[shard.index % len(workers)] if workers else None):
            futures.append(predict_shard_task.submit(params, shard, owner))
    return [future.result() for future in futures]
