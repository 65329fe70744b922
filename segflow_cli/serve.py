"""``segflow serve``: every deployment served from this process.

The deployments are defined once, in :mod:`flows.deployments`; ``deployments/prefect.yaml``
is generated from the same definitions, so serving and ``prefect deploy`` cannot drift.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.deployments import DEFAULT_LOCATIONS, Locations, build_deployments
from segflow.errors import SegflowError
from segflow_cli.common import EndpointOption, StoreOption, endpoint_options, fail

__all__ = ["serve"]

#: The option defaults: the definitions' (the generated prefect.yaml's) default locations.
_DEFAULTS = DEFAULT_LOCATIONS

CheckpointsOption = Annotated[str, typer.Option(help="Where models are exported.")]
LandingOption = Annotated[str, typer.Option(help="Where new recordings land (ingest, nightly).")]
ArchiveOption = Annotated[str, typer.Option(help="Archive of YYYY-MM-DD/ folders (backfill).")]
ModelTagOption = Annotated[
    str, typer.Option(help="Default model tag of predict, backfill, nightly.")
]
CronOption = Annotated[str, typer.Option(help="Cron schedule of the nightly deployment.")]
IntervalOption = Annotated[
    float | None,
    typer.Option(help="Seconds between nightly runs instead of the cron (for trying out)."),
]
LimitOption = Annotated[int | None, typer.Option(help="Most flow runs at once.")]


def serve(
    store: StoreOption = _DEFAULTS.store,
    checkpoints: CheckpointsOption = _DEFAULTS.checkpoints,
    landing: LandingOption = _DEFAULTS.landing,
    archive: ArchiveOption = _DEFAULTS.archive,
    model_tag: ModelTagOption = _DEFAULTS.model_tag,
    nightly_cron: CronOption = _DEFAULTS.nightly_cron,
    nightly_interval: IntervalOption = None,
    limit: LimitOption = None,
    s3_endpoint: EndpointOption = None,
) -> None:
    """Serve the ingest, train, predict, backfill, nightly and demo deployments from this process.

    Needs a Prefect server (PREFECT_API_URL); runs triggered from the UI or by the nightly
    schedule execute here. Stop with Ctrl-C.
    """
    from prefect import serve as prefect_serve

    locations = Locations(
        store=store,
        checkpoints=checkpoints,
        landing=landing,
        archive=archive,
        model_tag=model_tag,
        storage_options=endpoint_options(s3_endpoint),
        nightly_cron=nightly_cron,
        nightly_interval=nightly_interval,
    )
    try:
        deployments = [definition.to_deployment() for definition in build_deployments(locations)]
    except (ValueError, SegflowError) as error:
        raise fail(error) from None
    prefect_serve(*deployments, limit=limit)
