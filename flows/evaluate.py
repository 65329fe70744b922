"""The evaluate flow: score a model's stored predictions against the stored labels.

Deploy or run by path: ``flows/evaluate.py:evaluate``.
"""

from __future__ import annotations

from prefect import flow

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from segflow.config import CheckpointConfig, EvaluateParams
from segflow.evaluation import EvaluationReport
from tasks.evaluate import evaluate_task, publish_evaluation


@flow(name="segflow-evaluate")
def evaluate(
    params: EvaluateParams, checkpoints: CheckpointConfig | None = None
) -> EvaluationReport:
    """Score predictions/<model_tag>/ against the labels of the selected sequences.

    The model's task comes from its configuration under ``checkpoints`` when given, else it is
    inferred from the predictions. Publishes the report as markdown and table artifacts.
    """
    report = evaluate_task(params, checkpoints)
    publish_evaluation(report)
    return report
