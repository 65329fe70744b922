"""The train flow: train the stateful LSTM on stored sequences, checkpointed and resumable.

Deploy or run by path: ``flows/train.py:train``.
"""

from __future__ import annotations

from prefect import flow

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from segflow.config import TrainParams
from segflow.training import TrainReport
from tasks.train import publish_train_report, train_task


@flow(name="segflow-train")
def train(params: TrainParams) -> TrainReport:
    """Train (or resume) the model described by ``params`` and export it under its tag.

    A run killed at any point resumes from its latest checkpoint when started again with the
    same parameters; a finished run started again only reports.
    """
    report = train_task(params)
    publish_train_report(report)
    return report
