"""Prefect tasks for prediction: one coarse task per prediction pass."""

from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from segflow.config import PredictParams
from segflow.predicting import PredictReport, predict
from tasks.progress import StepProgress, artifact_key


@task(name="predict", cache_policy=NO_CACHE, task_run_name="predict {params.model_tag}")
def predict_task(params: PredictParams, run_id: str | None) -> PredictReport:
    """Predict (or resume, or continue) every selected sequence; return the report."""
    tag = params.model_tag
    progress = StepProgress(artifact_key("predict-progress", tag), f"predict {tag}")
    try:
        return predict(params, run_id=run_id, on_step=progress)
    finally:
        progress.close()


@task(name="publish-predict-report", cache_policy=NO_CACHE)
def publish_predict_report(report: PredictReport) -> None:
    """Publish one row per sequence (action, frames) as a table artifact."""
    create_table_artifact(
        key=artifact_key("predict", report.model_tag),
        table=[asdict(row) | {"frames": row.frames} for row in report.sequences],
        description=(
            f"**segflow predict `{report.model_tag}`**: {report.predicted} predicted, "
            f"{report.continued} continued, {report.skipped} skipped; "
            f"{report.frames} frames in {report.seconds:.1f} s."
        ),
    )
