"""Prefect tasks for evaluation: score stored predictions, publish the tables."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from segflow.config import CheckpointConfig, EvaluateParams
from segflow.evaluation import (
    Evaluation,
    EvaluationReport,
    markdown,
    score,
    sequence_table,
    summary_table,
)
from tasks.progress import artifact_key


@task(name="evaluate", cache_policy=NO_CACHE, task_run_name="evaluate {params.model_tag}")
def evaluate_task(
    params: EvaluateParams, checkpoints: CheckpointConfig | None = None
) -> Evaluation:
    """Score the stored predictions of ``params.model_tag``; return the typed report and the
    plots as bytes (a Dask worker's filesystem is not the user's: the flow writes them)."""
    return score(params, checkpoints=checkpoints)


@task(name="publish-evaluation", cache_policy=NO_CACHE)
def publish_evaluation(report: EvaluationReport) -> str:
    """Publish the report as a markdown artifact and the per-sequence table as a table
    artifact; return the markdown."""
    body = markdown(report)
    tag = report.model_tag
    create_markdown_artifact(key=artifact_key("evaluate", tag), markdown=body)
    summary = summary_table(report)
    cells = dict(zip(summary.columns, summary.rows[0], strict=True))
    create_table_artifact(
        key=artifact_key("evaluate-sequences", tag),
        table=sequence_table(report).records(),
        description=(
            f"**segflow evaluate `{tag}`** ({report.task}): {report.counts.scored} rows; "
            + ", ".join(f"{k} {v}" for k, v in cells.items() if k)
        ),
    )
    return body
