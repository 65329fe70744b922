"""``segflow serve``: every deployment served from this process.

The deployments are defined once, in :mod:`flows.deployments`; ``deployments/prefect.yaml``
is generated from the same definitions, so serving and ``prefect deploy`` cannot drift. An
option left out takes the definitions' default (:data:`flows.deployments.DEFAULT_LOCATIONS`),
imported when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from segflow.errors import SegflowError
from segflow_cli.common import CredentialsBlockOption, EndpointOption, endpoint_options, fail

__all__ = ["serve"]

_DEFAULT = " [default: the deployments']"
StoreOption = Annotated[
    str | None, typer.Option("--store", help="Local path or s3://bucket/prefix." + _DEFAULT)
]
CheckpointsOption = Annotated[
    str | None, typer.Option(help="Where models are exported." + _DEFAULT)
]
LandingOption = Annotated[
    str | None, typer.Option(help="Where new recordings land (ingest, nightly)." + _DEFAULT)
]
ArchiveOption = Annotated[
    str | None, typer.Option(help="Archive of YYYY-MM-DD/ folders (backfill)." + _DEFAULT)
]
ModelTagOption = Annotated[
    str | None, typer.Option(help="Default model tag of predict, backfill, nightly." + _DEFAULT)
]
CronOption = Annotated[
    str | None, typer.Option(help="Cron schedule of the nightly deployment." + _DEFAULT)
]
IntervalOption = Annotated[
    float | None,
    typer.Option(help="Seconds between nightly runs instead of the cron (for trying out)."),
]
LimitOption = Annotated[int | None, typer.Option(help="Most flow runs at once.")]


def serve(
    store: StoreOption = None,
    checkpoints: CheckpointsOption = None,
    landing: LandingOption = None,
    archive: ArchiveOption = None,
    model_tag: ModelTagOption = None,
    nightly_cron: CronOption = None,
    nightly_interval: IntervalOption = None,
    limit: LimitOption = None,
    s3_endpoint: EndpointOption = None,
    credentials_block: CredentialsBlockOption = None,
) -> None:
    """Serve the ingest, train, predict, backfill, nightly and demo deployments from this process.

    Needs a Prefect server (PREFECT_API_URL); runs triggered from the UI or by the nightly
    schedule execute here. Stop with Ctrl-C.
    """
    from dataclasses import replace

    from prefect import serve as prefect_serve

    from flows.deployments import DEFAULT_LOCATIONS, build_deployments

    given = {
        "store": store,
        "checkpoints": checkpoints,
        "landing": landing,
        "archive": archive,
        "model_tag": model_tag,
        "nightly_cron": nightly_cron,
    }
    locations = replace(
        DEFAULT_LOCATIONS,
        **{name: value for name, value in given.items() if value is not None},
        storage_options=endpoint_options(s3_endpoint),
        credentials_block=credentials_block,
        nightly_interval=nightly_interval,
    )
    try:
        deployments = [definition.to_deployment() for definition in build_deployments(locations)]
    except (ValueError, SegflowError) as error:
        raise fail(error) from None
    prefect_serve(*deployments, limit=limit)
