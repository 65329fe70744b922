"""The commands that run flows or read the store: ingest, train, predict, inspect, demo,
backfill.

Each command imports the flows, the parameter models and the store when it runs (zarr,
Prefect and TensorFlow are seconds of imports), so the app's ``--help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from segflow.errors import SegflowError
from segflow_cli.common import (
    DEFAULT_STORE,
    CredentialsBlockOption,
    EndpointOption,
    StoreOption,
    console,
    fail,
    load_config_file,
    locations,
    merge,
    open_store_at,
    store_location,
    validated,
)
from segflow_cli.progress import FrameProgress, PartitionBar
from segflow_cli.runner import flow_report, run_flow
from segflow_cli.trainflags import (
    ClassWeightOption,
    ClipnormOption,
    MinDeltaOption,
    MixedPrecisionOption,
    MonitorOption,
    OptimizerOption,
    PatienceOption,
    ScheduleOption,
    WarmupOption,
    WeightDecayOption,
    training_overrides,
)

if TYPE_CHECKING:  # these import the engine's stack: loaded when a command runs
    from segflow.backfill import BackfillReport
    from segflow.config import IngestParams
    from segflow.ingest import IngestReport

__all__ = [
    "DaskAddressOption",
    "DaskWorkersOption",
    "backfill",
    "dask_options",
    "demo",
    "ingest",
    "inspect",
    "predict",
    "train",
]

DaskAddressOption = Annotated[
    str | None,
    typer.Option(
        "--dask-address", help="Run the heavy work on this Dask scheduler (tcp://host:8786)."
    ),
]
DaskWorkersOption = Annotated[
    int | None,
    typer.Option("--dask-workers", help="Run the heavy work on a local Dask cluster of N."),
]


def dask_options(address: str | None, workers: int | None) -> dict[str, object]:
    """The parameters' Dask fields from the command line (unset ones left to the defaults).

    >>> dask_options(None, 3)
    {'dask_workers': 3}
    """
    given = {"dask_address": address, "dask_workers": workers}
    return {name: value for name, value in given.items() if value is not None}


def ingest(
    sources: Annotated[
        list[str], typer.Argument(help="Paths, globs, directories or s3:// prefixes.")
    ],
    store: StoreOption = DEFAULT_STORE,
    sequence_id: Annotated[
        str | None, typer.Option("--id", help="Sequence id (one source).")
    ] = None,
    segment_length: Annotated[int, typer.Option(help="Frames per segment (time chunk).")] = 16,
    labels: Annotated[str | None, typer.Option(help="Label file (one source).")] = None,
    append: Annotated[bool, typer.Option(help="Append to an existing sequence.")] = False,
    force: Annotated[bool, typer.Option(help="Re-ingest unchanged sources.")] = False,
    compression: Annotated[str, typer.Option(help="auto, lz4, zstd or none.")] = "auto",
    resize: Annotated[str | None, typer.Option(help="Resize frames to HxW, e.g. 64x64.")] = None,
    grayscale: Annotated[bool, typer.Option(help="Convert frames to one channel.")] = False,
    label_column: Annotated[str | None, typer.Option(help="CSV label column.")] = None,
    classes: Annotated[
        str | None,
        typer.Option(help="Classes of a text label column, in index order: rain,snow,sun."),
    ] = None,
    timestamp_column: Annotated[str | None, typer.Option(help="CSV timestamp column.")] = None,
    dask: Annotated[bool, typer.Option("--dask", help="Same as --dask-workers 2.")] = False,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    s3_endpoint: EndpointOption = None,
    credentials_block: CredentialsBlockOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ingest SOURCE... into the store (skips unchanged, resumes interrupted sequences)."""
    from segflow.config import IngestParams, SourceConfig, StoreConfig, WriteConfig

    try:
        params = IngestParams(
            sources=sources,
            store=StoreConfig(**store_location(store, s3_endpoint, credentials_block)),
            sequence_id=sequence_id,
            labels=labels,
            append=append,
            force=force,
            source=SourceConfig(
                resize=_parse_size(resize),
                grayscale=grayscale,
                label_column=label_column,
                class_names=None if classes is None else tuple(classes.split(",")),
                timestamp_column=timestamp_column,
            ),
            write=WriteConfig(segment_length=segment_length, compression=compression),
            **dask_options(dask_address, 2 if dask and dask_workers is None else dask_workers),
        )
    except (ValueError, SegflowError) as error:
        raise fail(error) from None
    _run_ingest(params, as_json=as_json)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH such as 64x64, got {text!r}") from None
    return height, width


def _run_ingest(params: IngestParams, *, as_json: bool) -> None:
    from flows.ingest import ingest as ingest_flow
    from segflow.ingest import IngestReport

    report, failed = flow_report(
        ingest_flow,
        params,
        "ingest",
        FrameProgress(console, enabled=not as_json),
        expected=IngestReport,
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_ingest_report(report)
    if failed:
        raise typer.Exit(code=1)


def _print_ingest_report(report: IngestReport) -> None:
    table = Table(title="segflow ingest")
    for column in ("sequence", "status", "frames", "MB", "seconds", "note"):
        table.add_column(column)
    for r in report.results:
        style = {"failed": "red", "skipped": "dim"}.get(r.status, "")
        table.add_row(
            r.sequence_id,
            f"[{style}]{r.status}[/]" if style else r.status,
            str(r.frames),
            f"{r.bytes / 1e6:.1f}",
            f"{r.seconds:.2f}",
            r.message,
        )
    console.print(table)
    console.print(report.summary.headline())


def train(
    store: StoreOption = DEFAULT_STORE,
    checkpoints: Annotated[
        str, typer.Option(help="Local path or s3:// URL for checkpoints.")
    ] = "./segflow-checkpoints",
    config: Annotated[
        Path | None, typer.Option(help="JSON/YAML/TOML file of train parameters.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the sequences.")] = None,
    lanes: Annotated[int | None, typer.Option(help="Sequences side by side.")] = None,
    segment_length: Annotated[int | None, typer.Option(help="Frames per lane per step.")] = None,
    model_tag: Annotated[str | None, typer.Option(help="Tag the model is exported under.")] = None,
    model_factory: Annotated[
        str | None,
        typer.Option(
            help="Your own Keras model: 'package.module:function' taking a ModelSpec "
            "(see examples/custom_model.py); the data give its input shape, task and head."
        ),
    ] = None,
    inputs: Annotated[
        str | None,
        typer.Option(help="What the model sees at row t: features, labels, features_and_labels."),
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(help="Predict the label this many rows ahead (>= 1 with label inputs)."),
    ] = None,
    time_steps: Annotated[
        int | None,
        typer.Option(help="Train a stateless model on windows of this many rows."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Windows per batch of a windowed (--time-steps) model.")
    ] = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="Train on these only.")] = None,
    pattern: Annotated[
        str | None, typer.Option(help="Train on the ids matching this shell pattern.")
    ] = None,
    partition: Annotated[
        str | None, typer.Option(help="Train on the sequences of this partition (date).")
    ] = None,
    validation_ids: Annotated[
        list[str] | None,
        typer.Option("--validation-id", help="Held out and validated after each epoch."),
    ] = None,
    validation_pattern: Annotated[
        str | None, typer.Option(help="Hold out the selected ids matching this pattern.")
    ] = None,
    validation_fraction: Annotated[
        float | None, typer.Option(help="Hold out this fraction of the selection (seeded).")
    ] = None,
    init_from: Annotated[
        str | None, typer.Option(help="Warm start: continue this exported model's training.")
    ] = None,
    restart_epoch_on_change: Annotated[
        bool | None,
        typer.Option(
            "--restart-epoch-on-change",
            help="Resuming over training sequences that changed since the checkpoint: run "
            "the interrupted epoch again over them as they are (default: refuse).",
        ),
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Learning rate (a schedule's peak).")
    ] = None,
    early_stopping_patience: PatienceOption = None,
    early_stopping_min_delta: MinDeltaOption = None,
    monitor: MonitorOption = None,
    optimizer: OptimizerOption = None,
    weight_decay: WeightDecayOption = None,
    clipnorm: ClipnormOption = None,
    schedule: ScheduleOption = None,
    warmup_steps: WarmupOption = None,
    class_weight: ClassWeightOption = None,
    mixed_precision: MixedPrecisionOption = None,
    s3_endpoint: EndpointOption = None,
    credentials_block: CredentialsBlockOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train a model on the store's sequences (resumes from the latest checkpoint).

    By default a stateful LSTM streams each whole sequence and predicts row t's label from
    rows up to t. --inputs and --horizon shift what it sees and predicts (e.g. yesterday's
    weather and rain predict tomorrow's rain: --inputs features_and_labels --horizon 1);
    --time-steps N trains the stateless model on windows of N rows instead. segflow predict
    reads all of this from the model.
    """
    from segflow.config import TrainParams

    overrides = {
        **locations(store, checkpoints, s3_endpoint, credentials_block),
        "epochs": epochs,
        "model_tag": model_tag,
        "model_factory": model_factory,
        "learning_rate": learning_rate,
        "init_from": init_from,
        "selection": {"ids": ids, "pattern": pattern, "partition": partition},
        "validation_ids": validation_ids,
        "validation_pattern": validation_pattern,
        "validation_fraction": validation_fraction,
        "on_changed_data": "restart_epoch" if restart_epoch_on_change else None,
        "stream": {"lanes": lanes, "segment_length": segment_length},
        "recipe": {
            "inputs": inputs,
            "horizon": horizon,
            "time_steps": time_steps,
            "batch_size": batch_size,
        },
        **training_overrides(
            patience=early_stopping_patience,
            min_delta=early_stopping_min_delta,
            monitor=monitor,
            optimizer=optimizer,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            schedule=schedule,
            warmup_steps=warmup_steps,
            class_weight=class_weight,
            mixed_precision=mixed_precision,
        ),
    }
    params = validated(TrainParams, merge(load_config_file(config), overrides))
    # Only now: these import TensorFlow (seconds), which a parameter error need not wait for.
    from flows.train import train as train_flow
    from segflow.training import TrainReport

    report = run_flow(train_flow, params, "train", expected=TrainReport)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    last = report.history[-1] if report.history else {}
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in last.items())
    console.print(
        f"trained [bold]{report.model_tag}[/]: {report.epochs} epochs, {report.steps} steps"
        f" ({metrics}); checkpoint {report.checkpoint} in {checkpoints}"
    )


def predict(
    store: StoreOption = DEFAULT_STORE,
    checkpoints: Annotated[
        str, typer.Option(help="Where the trained model was exported.")
    ] = "./segflow-checkpoints",
    model_tag: Annotated[
        str, typer.Option(help="The model's tag; predictions/<tag>/ in the store.")
    ] = "default",
    segment_length: Annotated[int | None, typer.Option(help="Frames per lane per step.")] = None,
    lanes: Annotated[int | None, typer.Option(help="Sequences side by side.")] = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these sequences.")] = None,
    pattern: Annotated[
        str | None, typer.Option(help="Only the ids matching this shell pattern, e.g. 'test-*'.")
    ] = None,
    partition: Annotated[
        str | None, typer.Option(help="Only the sequences of this partition (date).")
    ] = None,
    recompute: Annotated[bool, typer.Option(help="Recompute from frame 0.")] = False,
    break_lock: Annotated[
        bool,
        typer.Option(
            "--break-lock",
            help="Take the tag's prediction lock even if another run holds it (only when that "
            "run is dead).",
        ),
    ] = False,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    s3_endpoint: EndpointOption = None,
    credentials_block: CredentialsBlockOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Predict every selected sequence with the model exported under --model-tag (on Dask:
    one shard per worker)."""
    from segflow.config import PredictParams

    overrides = {
        **locations(store, checkpoints, s3_endpoint, credentials_block),
        "model_tag": model_tag,
        "stream": {"lanes": lanes, "segment_length": segment_length},
        "selection": {"ids": ids or None, "pattern": pattern, "partition": partition},
        "recompute": recompute,
        "break_lock": break_lock,
        **dask_options(dask_address, dask_workers),
    }
    params = validated(PredictParams, merge({}, overrides))
    from flows.predict import predict as predict_flow
    from segflow.predicting import PredictReport

    report = run_flow(predict_flow, params, "predict", expected=PredictReport)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    counts = {
        "predicted": report.predicted,
        "continued": report.continued,
        "skipped": report.skipped,
        "frames": report.frames,
        "steps": report.steps,
        "resumed_from": report.resumed_from,
        "seconds": f"{report.seconds:.2f}",
        "shards": len(report.shards) or None,
    }
    retried = report.retries
    console.print(
        f"predicted with [bold]{model_tag}[/]: "
        + ", ".join(f"{k} {v}" for k, v in counts.items() if v is not None)
        + (f"; retried {retried}" if retried else "")
    )


def inspect(
    store: StoreOption = DEFAULT_STORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    s3_endpoint: EndpointOption = None,
    credentials_block: CredentialsBlockOption = None,
) -> None:
    """List every sequence in the store with its length, shape, dtype, chunks and completeness."""
    from storage.sequences import SequenceRepository

    try:
        repo = SequenceRepository(open_store_at(store, s3_endpoint, credentials_block))
        infos = repo.list_info()
    except SegflowError as error:
        raise fail(error) from None
    if as_json:
        document = {"store": repo.store.url, "sequences": [i.to_json() for i in infos]}
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table(title=f"segflow store {repo.store.url}")
    for column in ("id", "length", "frame shape", "dtype", "chunks", "labels", "complete"):
        table.add_column(column)
    for i in infos:
        table.add_row(
            i.id,
            str(i.length),
            str(i.frame_shape),
            i.dtype,
            str(i.chunks),
            i.meta.label_kind or "-",
            "yes" if i.complete else "[red]no[/]",
        )
    Console().print(table)


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path(
        "segflow-demo"
    ),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Training epochs of each model.")] = None,
    videos: Annotated[int | None, typer.Option(help="Synthetic videos.")] = None,
) -> None:
    """Run the main job end to end: synth → ingest → train three models → predict → report."""
    from segflow.config import DemoParams

    overrides = {"workdir": str(workdir), "seed": seed, "epochs": epochs, "videos": videos}
    params = validated(DemoParams, merge({}, overrides))
    from flows.demo import demo as demo_flow
    from segflow.demo import DemoResult

    console.print(
        f"[bold]segflow demo[/]: {params.videos} synthetic videos of {params.frames} frames "
        f"({params.size}x{params.size}x3), label = odd number of flashes so far"
    )
    result = run_flow(demo_flow, params, "demo", expected=DemoResult)
    metrics = result.metrics
    table = Table(title="memory across segments (held-out videos)")
    table.add_column("model")
    table.add_column("frame accuracy", justify="right")
    table.add_row("state carried across segments", f"{metrics.carried_val:.1%}")
    table.add_row("state reset every segment", f"{metrics.reset_val:.1%}")
    table.add_row("stateless, windows of one segment", f"{metrics.windowed_val:.1%}")
    table.add_row("stored predictions (carried)", f"{metrics.carried_pred:.1%}")
    Console().print(table)
    console.print(f"gap: [bold]{metrics.gap_points:.1f} points[/]")
    for what, path in result.paths.to_json().items():
        console.print(f"{what:>12}: {path}")
    console.print("Prefect artifacts: demo-report (markdown), demo-plot (link), ingest-summary.")


def backfill(
    start: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD (default: the archive's first).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last day, YYYY-MM-DD (default: the archive's last).")
    ] = None,
    archive: Annotated[
        str, typer.Option(help="Local path or s3:// prefix of YYYY-MM-DD/ folders.")
    ] = "./archive",
    store: StoreOption = DEFAULT_STORE,
    checkpoints: Annotated[
        str, typer.Option(help="Where the model was exported.")
    ] = "./segflow-checkpoints",
    model_tag: Annotated[
        str, typer.Option(help="Model predicting; partitions are done per tag.")
    ] = "default",
    ordered: Annotated[
        bool, typer.Option(help="Days continue each other: append, run in date order.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Redo partitions already done.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would run.")] = False,
    concurrency: Annotated[int, typer.Option(help="Partitions at once (unordered).")] = 4,
    predict: Annotated[
        bool, typer.Option(help="Predict each partition after ingesting it.")
    ] = True,
    segment_length: Annotated[
        int | None, typer.Option(help="Frames per segment (ingest and predict).")
    ] = None,
    lanes: Annotated[
        int | None, typer.Option(help="Sequences side by side when predicting.")
    ] = None,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    s3_endpoint: EndpointOption = None,
    credentials_block: CredentialsBlockOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Ingest and predict an archive partitioned by date, skipping days already done."""
    from segflow.config import BackfillParams

    overrides = {
        "archive": archive,
        "start": start,
        "end": end,
        "ordered": ordered,
        "force": force,
        "dry_run": dry_run,
        "concurrency": concurrency,
        "predict": predict,
        "model_tag": model_tag,
        **locations(store, checkpoints, s3_endpoint, credentials_block),
        "stream": {"lanes": lanes, "segment_length": segment_length},
        "write": {"segment_length": segment_length},
        **dask_options(dask_address, dask_workers),
    }
    params = validated(BackfillParams, merge({}, overrides))
    from flows.backfill import backfill as backfill_flow
    from segflow.backfill import BackfillReport

    report, failed = flow_report(
        backfill_flow,
        params,
        "backfill",
        PartitionBar(console, enabled=not (as_json or dry_run)),
        expected=BackfillReport,
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_backfill(report)
    if failed:
        raise typer.Exit(code=1)


def _print_backfill(report: BackfillReport) -> None:
    rows = [r for r in report.rows if r.status != "skipped"]
    if rows:
        title = "segflow backfill (dry run)" if report.dry_run else "segflow backfill"
        table = Table(title=title)
        for column in ("partition", "status", "sequences", "frames", "seconds", "note"):
            table.add_column(column)
        for r in rows:
            status = "would run" if report.dry_run else r.status
            style = {"failed": "red", "not run": "dim"}.get(r.status, "")
            table.add_row(
                r.partition,
                f"[{style}]{status}[/]" if style else status,
                str(len(r.sequences)),
                str(r.frames),
                f"{r.seconds:.2f}",
                r.message,
            )
        Console().print(table)
    console.print(report.headline())
