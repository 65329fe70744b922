"""Prefect tasks of the nightly job: find what landed, then ingest (fine-tune) and predict it."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from segflow.config import FineTune, NightlyParams, PredictParams
from segflow.finetune import FineTuneResult
from segflow.landing import (
    NIGHTLY_WORKERS,
    LandingResult,
    fine_tune_landed,
    ingest_then_predict,
    nightly_ingest_params,
    nightly_pairs,
    nightly_predict_params,
)
from tasks.progress import StepProgress, artifact_key


@task(name="find-arrivals", cache_policy=NO_CACHE)
def arrivals_task(params: NightlyParams) -> list[tuple[str, str]]:
    """``(uri, sequence id)`` of every source in the landing folder; none if it is missing."""
    return nightly_pairs(params)


@task(
    name="ingest-then-predict",
    cache_policy=NO_CACHE,
    # A retry redoes little: complete sequences and appended sources are skipped, and the
    # prediction resumes from its checkpoint.
    retries=2,
    retry_delay_seconds=[2, 10],
    task_run_name="land {params.model_tag}",
)
def land_task(
    pairs: list[tuple[str, str]], params: NightlyParams, run_id: str | None
) -> LandingResult:
    """Ingest ``pairs``, fine-tune if asked, then predict the sequences that landed (the others
    too if some failed)."""
    predict = nightly_predict_params(params)
    tag = params.model_tag
    progress = None
    if predict is not None:
        progress = StepProgress(artifact_key("predict-progress", tag), f"predict {tag}")
    try:
        return ingest_then_predict(
            pairs,
            nightly_ingest_params(params),
            predict,
            run_id,
            workers=NIGHTLY_WORKERS,
            on_step=progress,
            fine_tune=params.fine_tune,
        )
    finally:
        if progress is not None:
            progress.close()


@task(name="fine-tune", cache_policy=NO_CACHE, task_run_name="fine-tune {predict.model_tag}")
def fine_tune_task(
    predict: PredictParams, settings: FineTune, ids: tuple[str, ...]
) -> tuple[PredictParams, FineTuneResult]:
    """Fine-tune on the labelled sequences of ``ids``: the prediction's parameters with the
    version to predict with, and what was done (a failure is recorded, not raised)."""
    return fine_tune_landed(predict, settings, ids)
