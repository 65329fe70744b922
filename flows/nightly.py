"""The scheduled job: ingest what landed since last time, then predict new and grown sequences.

Meant for a cron schedule (``segflow serve`` and ``deployments/prefect.yaml`` run it at 02:00).
Unchanged files already ingested are skipped by the ingest, sequences already predicted by
the same model are skipped by the prediction, and appended recordings are continued from
their saved LSTM state, so a night's cost is the new frames only. Ingest and prediction are
composed by :func:`segflow.landing.ingest_then_predict`, as in each backfill partition.

Deploy or run by path: ``flows/nightly.py:nightly``.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from segflow.config import NightlyParams
from segflow.landing import NightlyReport
from tasks.ingest import publish_summary
from tasks.nightly import arrivals_task, land_task
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
    result = land_task(pairs, params, flow_run.get_id())
    publish_summary(result.ingest)
    if result.prediction is not None:
        publish_predict_report(result.prediction)
    report = NightlyReport(params.landing, result)
    return (Failed if report.failed else Completed)(message=report.message, data=report)
