"""Prefect tasks for training: one coarse task per training run (checkpointed inside)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from segflow.config import TrainParams
from segflow.report import markdown_table
from segflow.training import TrainReport, train
from tasks.progress import StepProgress, artifact_key


@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train {params.model_tag}")
def train_task(params: TrainParams) -> TrainReport:
    """Train (or resume) the model of ``params``; progress goes to an artifact and the CLI."""
    tag = params.model_tag
    progress = StepProgress(artifact_key("train-progress", tag), f"train {tag}")
    try:
        return train(params, on_step=progress)
    finally:
        progress.close()


@task(name="publish-train-report", cache_policy=NO_CACHE)
def publish_train_report(report: TrainReport) -> None:
    """Publish the per-epoch history as a markdown artifact."""
    history = report.history
    metrics = sorted({k for row in history for k in row})
    rows = [
        [i + 1, *(f"{row.get(k, float('nan')):.4f}" for k in metrics)]
        for i, row in enumerate(history)
    ]
    body = (
        f"# segflow train `{report.model_tag}`\n\n"
        f"{report.epochs} epochs, {report.steps} steps, {report.frames} frames; "
        f"checkpoint `{report.checkpoint}`, config hash `{report.config_hash[:12]}`.\n\n"
        + _class_weights_line(report)
        + markdown_table(["epoch", *metrics], rows)
    )
    create_markdown_artifact(key=artifact_key("train", report.model_tag), markdown=body)
    if report.curves is not None:  # a local path becomes a file:// link the UI can open
        link = report.curves if "://" in report.curves else Path(report.curves).resolve().as_uri()
        create_link_artifact(
            key=artifact_key("train-curves", report.model_tag),
            link=link,
            link_text=f"{report.model_tag} training curves (PNG)",
        )


def _class_weights_line(report: TrainReport) -> str:
    if report.class_weights is None:
        return ""
    weights = ", ".join(f"{i}: {w:.3g}" for i, w in enumerate(report.class_weights))
    return f"Loss weighted by class ({weights}).\n\n"
