"""Prefect tasks of the nightly job: find what landed, then ingest and predict it in one task."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from segflow.config import NightlyParams
from segflow.landing import (
    NIGHTLY_WORKERS,
    LandingResult,
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
    """Ingest ``pairs``, then predict the sequences that landed (the others too if some failed)."""
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
        )
    finally:
        if progress is not None:
            progress.close()
