"""``segflow serve``: every deployment served from this process."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from segflow.config import IngestParams, StoreConfig
from segflow.errors import SegflowError
from segflow_cli.common import EndpointOption, StoreOption, endpoint_options, fail
from storage.urls import DEFAULT_STORE

__all__ = ["serve"]


def _deployments(
    *, store: str, checkpoints: str, landing: str, archive: str, model_tag: str,
    storage_options: dict[str, Any] | None, nightly_cron: str, nightly_interval: float | None,
) -> list[Any]:
    """The deployments ``segflow serve`` serves, each with typed, documented default parameters."""
    from flows.backfill import backfill as backfill_flow
    from flows.ingest import ingest as ingest_flow
    from flows.nightly import nightly as nightly_flow
    from flows.predict import predict as predict_flow
    from flows.train import train as train_flow
    from segflow.config import BackfillParams, NightlyParams, PredictParams, TrainParams

    common = {
        "store": StoreConfig(url=store, storage_options=storage_options),
        "checkpoints": {"url": checkpoints, "storage_options": storage_options},
        "model_tag": model_tag,
    }
    tagless = {"store": common["store"]}
    defaults = {
        "ingest": (ingest_flow, IngestParams(sources=[landing], **tagless),
                   "Land sources (videos, image folders, arrays, CSV series) in the Zarr store."),
        "train": (train_flow, TrainParams(**common), "Train (or resume) the stateful LSTM."),
        "predict": (predict_flow, PredictParams(**common),
                    "Predict new and grown sequences; resumes and continues from saved state."),
        "backfill": (backfill_flow, BackfillParams(archive=archive, **common),
                     "Ingest and predict an archive of YYYY-MM-DD/ folders, skipping done days."),
        "nightly": (nightly_flow, NightlyParams(landing=landing, **common),
                    "Scheduled: ingest new arrivals from the landing folder, predict them."),
    }
    deployments = []
    for name, (flow_fn, params, description) in defaults.items():
        schedule: dict[str, Any] = {}
        if name == "nightly":
            schedule = {"interval": nightly_interval} if nightly_interval else {"cron": nightly_cron}
        deployments.append(flow_fn.to_deployment(
            name=name, description=description, tags=["segflow"],
            parameters={"params": params.model_dump(mode="json")}, **schedule,
        ))
    return deployments


def serve(
    store: StoreOption = DEFAULT_STORE,
    checkpoints: Annotated[str, typer.Option(help="Where models are exported.")] = "./segflow-checkpoints",
    landing: Annotated[str, typer.Option(help="Where new recordings land (ingest, nightly).")] = "./landing",
    archive: Annotated[str, typer.Option(help="Archive of YYYY-MM-DD/ folders (backfill).")] = "./archive",
    model_tag: Annotated[str, typer.Option(help="Default model tag of predict, backfill, nightly.")] = "default",
    nightly_cron: Annotated[str, typer.Option(help="Cron schedule of the nightly deployment.")] = "0 2 * * *",
    nightly_interval: Annotated[Optional[float], typer.Option(help="Seconds between nightly runs instead of the cron (for trying out).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Most flow runs at once.")] = None,
    s3_endpoint: EndpointOption = None,
) -> None:
    """Serve the ingest, train, predict, backfill and nightly deployments from this process.

    Needs a Prefect server (PREFECT_API_URL); runs triggered from the UI or by the nightly
    schedule execute here. Stop with Ctrl-C.
    """
    from prefect import serve as prefect_serve

    try:
        deployments = _deployments(
            store=store, checkpoints=checkpoints, landing=landing, archive=archive,
            model_tag=model_tag, storage_options=endpoint_options(s3_endpoint),
            nightly_cron=nightly_cron, nightly_interval=nightly_interval,
        )
    except (ValueError, SegflowError) as error:
        raise fail(error) from None
    prefect_serve(*deployments, limit=limit)

