"""The scheduled job: ingest what landed since last time, then predict new and grown sequences.

With ``fine_tune`` it first fine-tunes the model on tonight's labelled sequences and predicts
with the new version of the tag once it is whole (:mod:`segflow.finetune`); a failed or
killed fine-tune leaves the version in use, which then predicts, and the run ends Failed.

Meant for a cron schedule (``segflow serve`` and ``deployments/prefect.yaml`` run it at 02:00).
Unchanged files already ingested are skipped by the ingest, sequences already predicted by
the same model are skipped by the prediction, and appended recordings are continued from
their saved LSTM state, so a night's cost is the new frames only. Ingest and prediction are
composed by :func:`segflow.landing.ingest_then_predict`, as in each backfill partition.

With Dask options (``dask_address`` or ``dask_workers``) the ingest runs on the cluster like
the ingest flow's (:func:`flows.ingest.ingest_pairs`) and the prediction as the predict flow,
with the same options; without, both run in one task here.

Deploy or run by path: ``flows/nightly.py:nightly``.
"""

from __future__ import annotations

import time
from dataclasses import replace

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from flows.compute import task_runner
from flows.ingest import ingest_pairs
from segflow.config import NightlyParams
from segflow.ingest import IngestReport
from segflow.landing import (
    LandingResult,
    NightlyReport,
    error_message,
    landed_predict_params,
    nightly_ingest_params,
    nightly_predict_params,
)
from tasks.ingest import publish_summary
from tasks.nightly import arrivals_task, fine_tune_task, land_task
from tasks.predict import publish_predict_report


@flow(name="segflow-nightly", log_prints=True)
def nightly(params: NightlyParams = NightlyParams()) -> State:
    """Ingest ``params.landing`` into the store, then predict the sequences it landed in.

    An empty landing folder is a quiet night (Completed, nothing done). Ends Failed if a
    source failed to ingest (after predicting the others) or the prediction failed. The
    state's data is the :class:`~segflow.landing.NightlyReport`.
    """
    pairs = arrivals_task(params)
    if not pairs:
        print(f"Nothing landed in {params.landing!r}.")
        return Completed(message="nothing landed", data=NightlyReport(params.landing))
    if params.on_dask:
        result = _land_on_dask(pairs, params)
    else:
        result = land_task(pairs, params, flow_run.get_id())
    publish_summary(result.ingest)
    if result.prediction is not None and not params.on_dask:  # the predict flow published it
        publish_predict_report(result.prediction)
    report = NightlyReport(params.landing, result)
    return (Failed if report.failed else Completed)(message=report.message, data=report)


def _land_on_dask(pairs: list[tuple[str, str]], params: NightlyParams) -> LandingResult:
    """Ingest on the cluster, then predict what landed with the predict flow (same options)."""
    from flows.predict import predict  # a flow of its own; loaded only when it runs here

    started = time.perf_counter()
    ingest_params = nightly_ingest_params(params)
    results = ingest_pairs.with_options(task_runner=task_runner(params))(pairs, ingest_params)
    result = LandingResult(IngestReport.build(results, seconds=time.perf_counter() - started))
    selected = landed_predict_params(result, nightly_predict_params(params))
    if selected is None:
        return result
    if params.fine_tune is not None:
        selected, tuned = fine_tune_task(selected, params.fine_tune, result.landed)
        result = replace(result, fine_tune=tuned)
    state = predict(selected, return_state=True)
    if state.is_completed():
        return replace(result, prediction=state.result())
    error = state.result(raise_on_failure=False)
    message = error_message(error) if isinstance(error, BaseException) else str(state.message)
    return replace(result, predict_error=message)
