"""The scheduled job: ingest what landed since last time, then predict new and grown sequences.

Meant for a cron schedule (``segflow serve`` and ``deployments/prefect.yaml`` run it at 02:00).
Unchanged files already ingested are skipped by the ingest, sequences already predicted by
the same model are skipped by the prediction, and appended recordings are continued from
their saved LSTM state, so a night's cost is the new frames only.

Deploy or run by path: ``flows/nightly.py:nightly``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed, State

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from flows.ingest import ingest
from flows.predict import predict
from segflow.config import IngestParams, NightlyParams, PredictParams, SelectionConfig
from segflow.errors import SourceNotFoundError
from segflow.sources.discover import discover


@flow(name="segflow-nightly", log_prints=True)
def nightly(params: NightlyParams = NightlyParams()) -> State:
    """Ingest ``params.landing`` into the store, then predict the sequences it landed in.

    An empty landing folder is a quiet night (Completed, nothing done). Ends Failed if a
    source failed to ingest (after predicting the others) or the prediction failed.
    """
    arrivals = _arrivals(params)
    if not arrivals:
        print(f"Nothing landed in {params.landing!r}.")
        return Completed(message="nothing landed", data={"ingested": [], "predict": None})
    ingest_state = ingest(_ingest_params(params, arrivals), return_state=True)
    ingested = ingest_state.result(raise_on_failure=False)
    results = ingested["results"] if isinstance(ingested, dict) else []
    ids = sorted({r["sequence_id"] for r in results if r["status"] != "failed"})
    report: dict[str, Any] = {"ingested": results, "predict": None}
    if params.predict and ids:
        predict_state = predict(_predict_params(params, ids), return_state=True)
        if predict_state.is_failed():
            return Failed(message=f"predict failed: {predict_state.message}", data=report)
        report["predict"] = predict_state.result()
    if ingest_state.is_failed():
        return Failed(message=f"ingest failed: {ingest_state.message}", data=report)
    return Completed(message=f"{len(ids)} sequences ingested and predicted", data=report)


def _arrivals(params: NightlyParams) -> list[str]:
    try:
        return discover([params.landing], storage_options=params.store.storage_options)
    except SourceNotFoundError:
        return []


def _ingest_params(params: NightlyParams, arrivals: list[str]) -> IngestParams:
    return IngestParams(
        sources=arrivals, store=params.store, append=params.append,
        source=params.source, write=params.write,
    )


def _predict_params(params: NightlyParams, ids: list[str]) -> PredictParams:
    return PredictParams(
        store=params.store, selection=SelectionConfig(ids=ids),
        checkpoints=params.checkpoints, model_tag=params.model_tag, stream=params.stream,
    )
