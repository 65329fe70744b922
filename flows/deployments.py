"""segflow's deployments, defined once.

``segflow serve`` serves these deployments from one process, and ``deployments/prefect.yaml``
(for ``prefect deploy`` to a process work pool) is generated from them, so the two cannot
drift. After changing a definition, regenerate the file from the repository root::

    .venv/bin/python -m flows.deployments --output deployments/prefect.yaml

``python -m flows.deployments`` alone prints the document; ``--check`` exits 1 while the
file differs from it (``tests/test_deployments_definition.py`` fails then too).

Every deployment runs one flow, addressed by path (``flows/ingest.py:ingest``), with one
typed parameter, ``params``: a model from :mod:`segflow.config`, so the Prefect UI's Run form
shows every field with its default and description.

>>> [d.name for d in build_deployments()]
['ingest', 'train', 'predict', 'backfill', 'nightly', 'demo']
>>> build_deployments(Locations(landing="s3://bucket/landing"))[0].parameters["params"]["sources"]
['s3://bucket/landing']
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from segflow.config import (
    BackfillParams,
    CheckpointConfig,
    DemoParams,
    IngestParams,
    NightlyParams,
    PredictParams,
    StoreConfig,
    TrainParams,
)
from storage.urls import DEFAULT_STORE
from storage.validation import invalid_argument

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule as PrefectSchedule

__all__ = [
    "DEFAULT_LOCATIONS",
    "PREFECT_YAML",
    "TAGS",
    "WORK_POOL",
    "Deployment",
    "Locations",
    "Schedule",
    "build_deployments",
    "main",
    "prefect_yaml",
    "render_prefect_yaml",
]

#: The generated file, in the repository.
PREFECT_YAML = Path(__file__).resolve().parent.parent / "deployments" / "prefect.yaml"
#: The process work pool ``prefect deploy`` targets.
WORK_POOL = "segflow"
#: Tags of every deployment (filter on them in the UI).
TAGS = ("segflow",)
# The oldest Prefect the project supports (pyproject pins 3.8.x); a constant, not the installed
# version, so that a patch upgrade does not change the generated file.
PREFECT_VERSION = "3.8.0"

HEADER = """\
# GENERATED from flows/deployments.py -- do not edit; `segflow serve` serves the same deployments.
# Regenerate from the repository root after changing a definition:
#   .venv/bin/python -m flows.deployments --output deployments/prefect.yaml
#
# Prefect deployments of segflow's flows for a process work pool (no Docker needed).
# From the repository root:
#   prefect work-pool create segflow --type process
#   SEGFLOW_HOME=$PWD prefect deploy --prefect-file deployments/prefect.yaml --all
#   SEGFLOW_HOME=$PWD prefect worker start --pool segflow    (stop it with Ctrl-C twice)
# Each deployment's parameters are the flow's typed pydantic model, so the UI's Run form shows
# every field with its default and description.
"""


def _default(model: type[BaseModel], name: str) -> Any:
    """The default of field ``name`` of ``model``: the deployments use the models' defaults."""
    return model.model_fields[name].default


@dataclass(frozen=True)
class Schedule:
    """When a deployment runs by itself: a cron line or every ``interval`` seconds.

    Args:
        cron: A cron line, e.g. ``"0 2 * * *"`` (02:00 in ``timezone``).
        interval: Seconds between runs instead of a cron line.
        timezone: IANA time zone of the cron line.

    Raises:
        ConfigError: If not exactly one of ``cron`` and ``interval`` is given, or
            ``interval`` is not positive.

    >>> Schedule(cron="0 2 * * *").to_yaml()
    {'cron': '0 2 * * *', 'timezone': 'UTC', 'active': True}
    >>> Schedule(interval=0)
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received an invalid value for argument `interval`, expected ...
    """

    cron: str | None = None
    interval: float | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise invalid_argument(
                "cron", "exactly one of a cron line and an interval", (self.cron, self.interval)
            )
        if self.interval is not None and not self.interval > 0:
            raise invalid_argument("interval", "a positive number of seconds", self.interval)

    def to_yaml(self) -> dict[str, Any]:
        """The schedule as an entry of a deployment's ``schedules:`` in ``prefect.yaml``."""
        when: dict[str, Any] = {"cron": self.cron} if self.cron else {"interval": self.interval}
        return {**when, "timezone": self.timezone, "active": True}

    def to_prefect(self) -> PrefectSchedule:
        """The schedule as Prefect's schedule object (what ``flow.to_deployment`` takes)."""
        from prefect.schedules import Cron, Interval

        if self.cron is not None:
            return Cron(self.cron, timezone=self.timezone)
        assert self.interval is not None  # __post_init__: one of the two is set
        return Interval(self.interval, timezone=self.timezone)


@dataclass(frozen=True)
class Deployment:
    """One deployment: which flow runs, with which default ``params``, and when.

    Attributes:
        name: Deployment name; Prefect shows it as ``<flow name>/<name>``.
        entrypoint: The flow by path from the repository root, ``flows/<module>.py:<flow>``.
        description: One line shown in the UI's deployment list.
        params: Default value of the flow's one parameter, ``params`` (its pydantic model).
        tags: Tags shown and filtered on in the UI.
        schedule: When it runs by itself; ``None``: only when asked.
    """

    name: str
    entrypoint: str
    description: str
    params: BaseModel
    tags: tuple[str, ...] = TAGS
    schedule: Schedule | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        """The deployment's parameters as JSON: ``{"params": {...every field...}}``."""
        return {"params": self.params.model_dump(mode="json")}

    def load_flow(self) -> Flow[..., Any]:
        """Import the flow :attr:`entrypoint` names (its module, as a package module).

        Raises:
            ModuleNotFoundError: If the entry point's file is not a module of the project.
            AttributeError: If the module has no such attribute.
            TypeError: If the attribute is not a flow.
        """
        from prefect import Flow

        path, _, attribute = self.entrypoint.partition(":")
        module = importlib.import_module(Path(path).with_suffix("").as_posix().replace("/", "."))
        found = getattr(module, attribute)
        if not isinstance(found, Flow):
            raise TypeError(
                f"Entry point {self.entrypoint!r} is a {type(found).__name__}, not a flow."
            )
        return found

    def to_deployment(self) -> RunnerDeployment:
        """The deployment as ``segflow serve`` serves it (``flow.to_deployment``)."""
        from prefect.deployments.runner import RunnerDeployment

        schedules = [self.schedule.to_prefect()] if self.schedule else None
        deployment = self.load_flow().to_deployment(
            name=self.name,
            description=self.description,
            tags=list(self.tags),
            parameters=self.parameters,
            schedules=schedules,
        )
        # ``to_deployment`` is sync-compatible: called outside an event loop it is no coroutine.
        assert isinstance(deployment, RunnerDeployment)
        return deployment

    def to_yaml(self) -> dict[str, Any]:
        """The deployment as an entry of ``deployments:`` in ``prefect.yaml``."""
        entry: dict[str, Any] = {
            "name": self.name,
            "entrypoint": self.entrypoint,
            "description": self.description,
            "tags": list(self.tags),
            "work_pool": {"name": WORK_POOL},
        }
        if self.schedule:
            entry["schedules"] = [self.schedule.to_yaml()]
        return entry | {"parameters": self.parameters}


@dataclass(frozen=True)
class Locations:
    """Where the deployments read and write by default (each field can be edited per run).

    The defaults are the parameter models' own, so a deployment's form starts where a flow
    run without arguments would.

    Attributes:
        store: Local path or s3:// URL of the Zarr store.
        checkpoints: Where models are exported.
        landing: Folder (or glob, or s3:// prefix) where new recordings land: what the ingest
            deployment ingests and the nightly one watches.
        archive: Archive of ``YYYY-MM-DD/`` folders the backfill reads.
        model_tag: Model of train, predict, backfill and nightly.
        storage_options: fsspec options (no secrets) for an S3 store, checkpoints and archive.
        credentials_block: Prefect block holding their credentials (see
            :class:`segflow.config.Located`); None: the AWS environment or profile.
        nightly_cron: Cron line of the nightly deployment (UTC).
        nightly_interval: Seconds between nightly runs instead of the cron line (for trying
            out); ``None`` or 0 keeps the cron line.
    """

    store: str = DEFAULT_STORE
    checkpoints: str = _default(CheckpointConfig, "url")
    landing: str = _default(NightlyParams, "landing")
    archive: str = _default(BackfillParams, "archive")
    model_tag: str = _default(TrainParams, "model_tag")
    storage_options: dict[str, Any] | None = field(default=None, hash=False)
    credentials_block: str | None = None
    nightly_cron: str = "0 2 * * *"
    nightly_interval: float | None = None

    def nightly_schedule(self) -> Schedule:
        """The nightly deployment's schedule: the interval if one is set, else the cron line."""
        if self.nightly_interval:
            return Schedule(interval=self.nightly_interval)
        return Schedule(cron=self.nightly_cron)


DEFAULT_LOCATIONS = Locations()


def build_deployments(locations: Locations = DEFAULT_LOCATIONS) -> tuple[Deployment, ...]:
    """Return segflow's deployments, their defaults pointing at ``locations``.

    Raises:
        pydantic.ValidationError: If a location makes an invalid parameter (a ``ValueError``;
            e.g. a model tag that is not one path component).
        ConfigError: If the nightly interval is negative.
    """
    access = {  # options and where the secrets are: never the secrets themselves
        "storage_options": locations.storage_options,
        "credentials_block": locations.credentials_block,
    }
    store = StoreConfig(url=locations.store, **access)
    checkpoints = CheckpointConfig(url=locations.checkpoints, **access)
    tag = locations.model_tag
    return (
        Deployment(
            "ingest",
            "flows/ingest.py:ingest",
            "Land sources (videos, image folders, arrays, CSV series) in the Zarr store.",
            IngestParams(sources=[locations.landing], store=store),
        ),
        Deployment(
            "train",
            "flows/train.py:train",
            "Train (or resume) the stateful LSTM on stored sequences.",
            TrainParams(store=store, checkpoints=checkpoints, model_tag=tag),
        ),
        Deployment(
            "predict",
            "flows/predict.py:predict",
            "Predict new and grown sequences; resumes and continues from saved state.",
            PredictParams(store=store, checkpoints=checkpoints, model_tag=tag),
        ),
        Deployment(
            "backfill",
            "flows/backfill.py:backfill",
            "Ingest and predict an archive of YYYY-MM-DD/ folders, skipping days already done.",
            BackfillParams(
                archive=locations.archive, store=store, checkpoints=checkpoints, model_tag=tag
            ),
        ),
        Deployment(
            "nightly",
            "flows/nightly.py:nightly",
            "Scheduled: ingest new arrivals from the landing folder, "
            "predict new and grown sequences.",
            NightlyParams(
                landing=locations.landing, store=store, checkpoints=checkpoints, model_tag=tag
            ),
            schedule=locations.nightly_schedule(),
        ),
        Deployment(
            "demo",
            "flows/demo.py:demo",
            "The memory demo end to end on synthetic video.",
            DemoParams(),
        ),
    )


def prefect_yaml(locations: Locations = DEFAULT_LOCATIONS) -> dict[str, Any]:
    """Return the ``prefect.yaml`` document of the deployments for ``locations``.

    >>> document = prefect_yaml()
    >>> document["deployments"][4]["schedules"]
    [{'cron': '0 2 * * *', 'timezone': 'UTC', 'active': True}]
    """
    return {
        "name": "segflow",
        "prefect-version": PREFECT_VERSION,
        # A worker runs flows from the checkout it is told about: entry points are relative.
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $SEGFLOW_HOME }}"
                }
            },
        ],
        "deployments": [d.to_yaml() for d in build_deployments(locations)],
    }


def render_prefect_yaml(locations: Locations = DEFAULT_LOCATIONS) -> str:
    """Return the text of ``deployments/prefect.yaml``: the header comment, then the document."""
    import yaml

    body = yaml.safe_dump(prefect_yaml(locations), sort_keys=False, width=100)
    # A blank line before each deployment, for the reader (entries start at column 0).
    return HEADER + body.replace("\n- name: ", "\n\n- name: ")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.deployments [--output PATH] [--check]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.deployments",
        description="Print, write or check the generated deployments/prefect.yaml.",
    )
    parser.add_argument("--output", type=Path, help="Write the document here (default: print it).")
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"Exit 1 if the file (--output, default {PREFECT_YAML}) differs from the document.",
    )
    args = parser.parse_args(argv)
    text = render_prefect_yaml()
    if args.check:
        path = args.output or PREFECT_YAML
        if not path.exists() or path.read_text() != text:
            print(
                f"{path} is stale; regenerate it with: python -m flows.deployments --output {path}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
