"""The evaluate flow: score a model's stored predictions against the stored labels.

Scoring reads the stored predictions; it does not predict. With Dask options
(``dask_address`` or ``dask_workers``) the scoring runs as one task on that cluster, so a
flow given a cluster never quietly runs its work here instead.

Deploy or run by path: ``flows/evaluate.py:evaluate``.
"""

from __future__ import annotations

from prefect import flow

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from flows.compute import task_runner
from segflow.config import CheckpointConfig, EvaluateParams
from segflow.evaluation import Evaluation, EvaluationReport
from tasks.evaluate import evaluate_task, publish_evaluation


@flow(name="segflow-evaluate")
def evaluate(
    params: EvaluateParams, checkpoints: CheckpointConfig | None = None
) -> EvaluationReport:
    """Score predictions/<model_tag>/ against the labels of the selected sequences.

    The model's task comes from its configuration under ``checkpoints`` when given, else it is
    inferred from the predictions. Publishes the report as markdown and table artifacts.
    Plots are drawn where the scoring runs (on Dask, by a worker) and come back as bytes:
    this flow's process writes them under ``plots_dir``.
    """
    if params.on_dask:
        runner = task_runner(params)
        evaluation = evaluate_on_cluster.with_options(task_runner=runner)(params, checkpoints)
    else:
        evaluation = evaluate_task(params, checkpoints)
    report = evaluation.written(params.plots_dir)
    publish_evaluation(report)
    return report


@flow(name="segflow-evaluate-scoring")
def evaluate_on_cluster(params: EvaluateParams, checkpoints: CheckpointConfig | None) -> Evaluation:
    """Score as one task on the flow's task runner (a Dask cluster)."""
    return evaluate_task.submit(params, checkpoints).result()
