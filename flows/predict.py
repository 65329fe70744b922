"""The predict flow: stream stored sequences through a trained model into the store.

Deploy or run by path: ``flows/predict.py:predict``.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from segflow.config import PredictParams
from segflow.predicting import PredictReport
from tasks.predict import predict_task, publish_predict_report


@flow(name="segflow-predict")
def predict(params: PredictParams) -> PredictReport:
    """Write predictions of the model ``params.model_tag`` to ``predictions/<tag>/``.

    Resumes an interrupted pass, continues grown sequences from their saved LSTM state, skips
    sequences already predicted by the same model.
    """
    report = predict_task(params, flow_run.get_id())
    publish_predict_report(report)
    return report
