"""Prefect tasks for prediction: one coarse task per prediction pass, or per shard of one."""

from __future__ import annotations

from dataclasses import asdict, replace

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from segflow.config import PredictParams
from segflow.predicting import ModelCache, PredictReport, Shard, plan_prediction_shards, predict
from tasks.progress import StepProgress, artifact_key

#: The models this process keeps: a Dask worker loads a model once for all its shards.
_MODELS = ModelCache(size=2)


def worker_models() -> ModelCache:
    """The models this process keeps (see :class:`~segflow.predicting.ModelCache`).

    Reached through this function, never named in a task's body: Dask pickles a task's
    function by value with the globals it names, which would ship a fresh, empty copy of
    the cache with every task; a module-level function travels by reference, so the
    worker's own cache answers.
    """
    return _MODELS


#: Each shard's last failed attempt in this process, ``(run_id, shard index) -> error``:
#: Prefect retries a failed task in the process it failed in, so its retry can say why.
_FAILURES: dict[tuple[str, int], str] = {}


def shard_failures() -> dict[tuple[str, int], str]:
    """This process's record of failed shard attempts (reached like :func:`worker_models`)."""
    return _FAILURES


@task(name="predict", cache_policy=NO_CACHE, task_run_name="predict {params.model_tag}")
def predict_task(params: PredictParams, run_id: str | None) -> PredictReport:
    """Predict (or resume, or continue) every selected sequence; return the report."""
    tag = params.model_tag
    progress = StepProgress(artifact_key("predict-progress", tag), f"predict {tag}")
    try:
        return predict(params, run_id=run_id, on_step=progress)
    finally:
        progress.close()


@task(name="plan-predict-shards", cache_policy=NO_CACHE)
def plan_shards_task(params: PredictParams, count: int) -> tuple[Shard, ...]:
    """Split the selection into at most ``count`` checked shards balanced by frames."""
    return plan_prediction_shards(params, count)


@task(
    name="predict-shard",
    cache_policy=NO_CACHE,
    task_run_name="predict {params.model_tag} {shard.name}",
    retries=2,
    retry_delay_seconds=[2, 10],
)
def predict_shard_task(params: PredictParams, shard: Shard, run_id: str) -> PredictReport:
    """Predict one shard as a durable run of its own (a retry resumes its checkpoint).

    ``run_id`` is the whole run's (the flow run's): every attempt of the shard shares it,
    which is how an attempt knows the lock it finds is an earlier attempt's. A worker lost
    mid-shard is survived by Dask running the task again elsewhere; a failure, by the
    retries here.
    """
    # No progress artifact: a shard's API calls would make the Prefect server's load a
    # reason for the shard to fail; the flow reports each shard when it ends.
    failures, key = shard_failures(), (run_id, shard.index)
    try:
        model = worker_models().get(params.checkpoints.open(), params.model_tag)
        report = predict(params, run_id=run_id, shard=shard, model=model)
    except Exception as error:
        failures[key] = f"attempt {task_run.run_count} failed: {type(error).__name__}: {error}"
        raise
    failed = failures.pop(key, "")
    if task_run.run_count <= 1 and not failed:
        return report
    # A retry after a failure (which may have left no lock or checkpoint behind).
    reason = failed or f"Prefect ran it {task_run.run_count} times"
    shards = tuple(
        replace(s, retry_reason="; ".join(filter(None, (reason, s.retry_reason))))
        for s in report.shards
    )
    return replace(report, shards=shards)


@task(name="publish-predict-report", cache_policy=NO_CACHE)
def publish_predict_report(report: PredictReport) -> None:
    """Publish one row per sequence (action, frames) as a table artifact."""
    retried = report.retries
    sharded = f" in {len(report.shards)} shards" if report.shards else ""
    create_table_artifact(
        key=artifact_key("predict", report.model_tag),
        table=[asdict(row) | {"frames": row.frames} for row in report.sequences],
        description=(
            f"**segflow predict `{report.model_tag}`**: {report.predicted} predicted, "
            f"{report.continued} continued, {report.skipped} skipped; "
            f"{report.frames} frames in {report.seconds:.1f} s{sharded}"
            + (f"; retried: {retried}." if retried else ".")
        ),
    )
