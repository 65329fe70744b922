"""The ``segflow`` command line (Typer + Rich).

Stable forms (scripts call them)::

    segflow synth videos OUT_DIR [--count N --frames N --size N --seed N]
    segflow ingest SOURCE... --store URL [--id ID] [--segment-length N] [--labels PATH]
    segflow inspect --store URL --json
    segflow demo
    segflow backfill --start DATE --end DATE --archive URL [--ordered] [--force] [--dry-run]
    segflow serve [--landing DIR] [--archive URL] [--nightly-cron CRON]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any, Optional  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from segflow.config import IngestParams, SourceConfig, StoreConfig, WriteConfig  # noqa: E402
from segflow.errors import SegflowError  # noqa: E402
from segflow.cli_progress import FrameProgress  # noqa: E402
from storage.urls import DEFAULT_STORE  # noqa: E402

app = typer.Typer(
    help="segflow: long segmented sequences into Zarr v3 and through a stateful LSTM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
synth_app = typer.Typer(help="Write seeded synthetic inputs (nothing is downloaded).")
app.add_typer(synth_app, name="synth")
console = Console(stderr=True)

StoreOption = Annotated[str, typer.Option("--store", help="Local path or s3://bucket/prefix.")]
EndpointOption = Annotated[
    Optional[str],
    typer.Option("--s3-endpoint", envvar="SEGFLOW_S3_ENDPOINT_URL", help="S3 endpoint URL."),
]


def _storage_options(endpoint: str | None) -> dict[str, Any] | None:
    return {"endpoint_url": endpoint} if endpoint else None


def _fail(error: Exception | str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)


@synth_app.command("videos")
def synth_videos_command(
    out_dir: Path,
    count: int = typer.Option(4, help="Number of videos."),
    frames: int = typer.Option(120, help="Frames per video."),
    size: int = typer.Option(64, help="Frame height and width."),
    fps: int = typer.Option(24, help="Frames per second."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write encoded videos with flash events and per-frame parity labels (sidecars)."""
    from segflow.synth import synth_videos

    paths = synth_videos(out_dir, count=count, frames=frames, height=size, width=size, fps=fps, seed=seed)
    for path in paths:
        typer.echo(str(path))


@synth_app.command("csv")
def synth_csv_command(
    out_dir: Path,
    count: int = typer.Option(2, help="Number of series."),
    rows: int = typer.Option(1000, help="Rows per series."),
    features: int = typer.Option(8, help="Feature columns."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write multivariate CSV series with timestamp and label columns."""
    from segflow.synth import synth_series_csv

    for path in synth_series_csv(out_dir, count=count, rows=rows, features=features, seed=seed):
        typer.echo(str(path))


@synth_app.command("array")
def synth_array_command(
    path: Path,
    frames: int = typer.Option(100, help="Frames."),
    shape: str = typer.Option("64,64,3", help="Frame shape, comma separated."),
    dtype: str = typer.Option("uint8", help="NumPy dtype."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write a .npy array of frames."""
    from segflow.synth import synth_array

    frame_shape = tuple(int(s) for s in shape.split(",") if s)
    for written in synth_array(path, frames=frames, shape=frame_shape, dtype=dtype, seed=seed):
        typer.echo(str(written))


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="Paths, globs, directories or s3:// prefixes.")],
    store: StoreOption = DEFAULT_STORE,
    sequence_id: Annotated[Optional[str], typer.Option("--id", help="Sequence id (one source).")] = None,
    segment_length: Annotated[int, typer.Option(help="Frames per segment (time chunk).")] = 16,
    labels: Annotated[Optional[str], typer.Option(help="Label file (one source).")] = None,
    append: Annotated[bool, typer.Option(help="Append to an existing sequence.")] = False,
    force: Annotated[bool, typer.Option(help="Re-ingest unchanged sources.")] = False,
    compression: Annotated[str, typer.Option(help="auto, lz4, zstd or none.")] = "auto",
    resize: Annotated[Optional[str], typer.Option(help="Resize frames to HxW, e.g. 64x64.")] = None,
    grayscale: Annotated[bool, typer.Option(help="Convert frames to one channel.")] = False,
    label_column: Annotated[Optional[str], typer.Option(help="CSV label column.")] = None,
    timestamp_column: Annotated[Optional[str], typer.Option(help="CSV timestamp column.")] = None,
    dask: Annotated[bool, typer.Option("--dask", help="Run sources on a local Dask cluster.")] = False,
    s3_endpoint: EndpointOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ingest SOURCE... into the store (skips unchanged, resumes interrupted sequences)."""
    try:
        params = IngestParams(
            sources=sources,
            store=StoreConfig(url=store, storage_options=_storage_options(s3_endpoint)),
            sequence_id=sequence_id,
            labels=labels,
            append=append,
            force=force,
            source=SourceConfig(
                resize=_parse_size(resize),
                grayscale=grayscale,
                label_column=label_column,
                timestamp_column=timestamp_column,
            ),
            write=WriteConfig(segment_length=segment_length, compression=compression),
            use_dask=dask,
        )
    except (ValueError, SegflowError) as error:
        raise _fail(error) from None
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

    report, failed = _flow_report(
        ingest_flow, params, "ingest", FrameProgress(console, enabled=not as_json)
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_ingest_report(report)
    if failed:
        raise typer.Exit(code=1)


def _print_ingest_report(report: dict[str, Any]) -> None:
    table = Table(title="segflow ingest")
    for column in ("sequence", "status", "frames", "MB", "seconds", "note"):
        table.add_column(column)
    for r in report["results"]:
        style = {"failed": "red", "skipped": "dim"}.get(r["status"], "")
        table.add_row(
            r["sequence_id"], f"[{style}]{r['status']}[/]" if style else r["status"],
            str(r["frames"]), f"{r['bytes'] / 1e6:.1f}", f"{r['seconds']:.2f}", r["message"],
        )
    console.print(table)
    s = report["summary"]
    console.print(
        f"{s['written']} written, {s['appended']} appended, {s['skipped']} skipped, "
        f"{s['failed']} failed; {s['frames']} frames, {s['bytes'] / 1e6:.1f} MB "
        f"in {s['seconds']:.1f} s ({s['mb_per_s']:.1f} MB/s)"
    )


def _load_config_file(path: Path | None) -> dict[str, Any]:
    """Parameters from a JSON, YAML or TOML file (the same shape as the flow parameters)."""
    if path is None:
        return {}
    try:
        text = path.read_text()
    except OSError as error:
        raise _fail(f"Cannot read config file {str(path)!r}: {error.strerror}.") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    elif path.suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise _fail(f"Config file {str(path)!r} must hold a mapping of parameters, got {type(data).__name__}.")
    return data


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (options given on the command line) into ``base``."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key] = _merge(merged.get(key) or {}, value)
        elif value is not None:
            merged[key] = value
    return merged


def _locations(store: str, checkpoints: str, s3_endpoint: str | None) -> dict[str, Any]:
    """The store and checkpoint locations of a run, as parameter overrides."""
    options = _storage_options(s3_endpoint)
    return {
        "store": {"url": store, "storage_options": options},
        "checkpoints": {"url": checkpoints, "storage_options": options},
    }


def _validated(model: Any, data: dict[str, Any]) -> Any:
    """Build the parameter model ``model`` from ``data``; exit with the error if invalid."""
    try:
        return model(**data)
    except (ValueError, SegflowError) as error:
        raise _fail(error) from None


def _flow_report(
    flow_fn: Any, params: Any, name: str, progress: Any
) -> tuple[dict[str, Any], bool]:
    """Run a flow in this process; return its report and whether the run failed.

    A flow that fails with a report (some sources or partitions failed) still returns it, so
    the caller can print it before exiting non-zero; one that fails without a report exits
    here with its error.
    """
    with progress:
        state = flow_fn(params, return_state=True)
    report = state.result(raise_on_failure=False)
    if not isinstance(report, dict):
        raise _fail(report if isinstance(report, Exception) else RuntimeError(f"{name} failed: {state.message}"))
    return report, state.is_failed()


def _run_flow(flow_fn: Any, params: Any, name: str) -> dict[str, Any]:
    """Run a flow that reports only on success; exit with its error otherwise."""
    report, failed = _flow_report(flow_fn, params, name, FrameProgress(console))
    if failed:
        raise _fail(f"{name} failed.")
    return report


@app.command()
def train(
    store: StoreOption = DEFAULT_STORE,
    checkpoints: Annotated[str, typer.Option(help="Local path or s3:// URL for checkpoints.")] = "./segflow-checkpoints",
    config: Annotated[Optional[Path], typer.Option(help="JSON/YAML/TOML file of train parameters.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Passes over the sequences.")] = None,
    lanes: Annotated[Optional[int], typer.Option(help="Sequences side by side.")] = None,
    segment_length: Annotated[Optional[int], typer.Option(help="Frames per lane per step.")] = None,
    model_tag: Annotated[Optional[str], typer.Option(help="Tag the model is exported under.")] = None,
    s3_endpoint: EndpointOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train the stateful LSTM on the store's sequences (resumes from the latest checkpoint)."""
    from flows.train import train as train_flow
    from segflow.config import TrainParams

    overrides = {
        **_locations(store, checkpoints, s3_endpoint),
        "epochs": epochs,
        "model_tag": model_tag,
        "stream": {"lanes": lanes, "segment_length": segment_length},
    }
    params = _validated(TrainParams, _merge(_load_config_file(config), overrides))
    report = _run_flow(train_flow, params, "train")
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    last = report["history"][-1] if report["history"] else {}
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in last.items())
    console.print(
        f"trained [bold]{report['model_tag']}[/]: {report['epochs']} epochs, {report['steps']} steps"
        f" ({metrics}); checkpoint {report['checkpoint']} in {checkpoints}"
    )


@app.command()
def predict(
    store: StoreOption = DEFAULT_STORE,
    checkpoints: Annotated[str, typer.Option(help="Where the trained model was exported.")] = "./segflow-checkpoints",
    model_tag: Annotated[str, typer.Option(help="The model's tag; predictions/<tag>/ in the store.")] = "default",
    segment_length: Annotated[Optional[int], typer.Option(help="Frames per lane per step.")] = None,
    lanes: Annotated[Optional[int], typer.Option(help="Sequences side by side.")] = None,
    ids: Annotated[Optional[list[str]], typer.Option("--id", help="Only these sequences.")] = None,
    recompute: Annotated[bool, typer.Option(help="Recompute from frame 0.")] = False,
    s3_endpoint: EndpointOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Predict every selected sequence with the model exported under --model-tag."""
    from flows.predict import predict as predict_flow
    from segflow.config import PredictParams

    overrides = {
        **_locations(store, checkpoints, s3_endpoint),
        "model_tag": model_tag,
        "stream": {"lanes": lanes, "segment_length": segment_length},
        "selection": {"ids": ids or None},
        "recompute": recompute,
    }
    params = _validated(PredictParams, _merge({}, overrides))
    report = _run_flow(predict_flow, params, "predict")
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(
        f"predicted with [bold]{model_tag}[/]: " + ", ".join(
            f"{k} {v}" for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
    )


@app.command()
def inspect(
    store: StoreOption = DEFAULT_STORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    s3_endpoint: EndpointOption = None,
) -> None:
    """List every sequence in the store with its length, shape, dtype, chunks and completeness."""
    from storage import open_store
    from storage.sequences import SequenceRepository

    try:
        repo = SequenceRepository(open_store(store, _storage_options(s3_endpoint)))
        infos = repo.list_info()
    except SegflowError as error:
        raise _fail(error) from None
    if as_json:
        document = {"store": repo.store.url, "sequences": [i.to_json() for i in infos]}
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table(title=f"segflow store {repo.store.url}")
    for column in ("id", "length", "frame shape", "dtype", "chunks", "labels", "complete"):
        table.add_column(column)
    for i in infos:
        table.add_row(
            i.id, str(i.length), str(i.frame_shape), i.dtype, str(i.chunks),
            i.meta.label_kind or "-", "yes" if i.complete else "[red]no[/]",
        )
    Console().print(table)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("segflow-demo"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs of each model.")] = None,
    videos: Annotated[Optional[int], typer.Option(help="Synthetic videos.")] = None,
) -> None:
    """Run the main job end to end: synth → ingest → train (carried vs reset) → predict → report."""
    from flows.demo import demo as demo_flow
    from segflow.config import DemoParams

    overrides = {"workdir": str(workdir), "seed": seed, "epochs": epochs, "videos": videos}
    params = _validated(DemoParams, _merge({}, overrides))
    console.print(
        f"[bold]segflow demo[/]: {params.videos} synthetic videos of {params.frames} frames "
        f"({params.size}x{params.size}x3), label = odd number of flashes so far"
    )
    result = _run_flow(demo_flow, params, "demo")
    metrics, where = result["metrics"], result["where"]
    table = Table(title="memory across segments (held-out videos)")
    table.add_column("model")
    table.add_column("frame accuracy", justify="right")
    table.add_row("state carried across segments", f"{metrics['carried_val']:.1%}")
    table.add_row("state reset every segment", f"{metrics['reset_val']:.1%}")
    table.add_row("stored predictions (carried)", f"{metrics['carried_pred']:.1%}")
    Console().print(table)
    console.print(f"gap: [bold]{metrics['gap_points']:.1f} points[/]")
    for what, path in where.items():
        console.print(f"{what:>12}: {path}")
    console.print("Prefect artifacts: demo-report (markdown), demo-plot (link), ingest-summary.")


class _PartitionBar:
    """A Rich bar of finished partitions; receives only the backfill's progress events."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]backfill"), BarColumn(), MofNCompleteColumn(), TextColumn("partitions"),
            TimeElapsedColumn(), console=console,
        )
        self._task: Any = None

    def __enter__(self) -> _PartitionBar:
        from segflow import progress

        if self._enabled:
            self._progress.start()
            progress.set_reporter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        from segflow import progress

        progress.set_reporter(None)
        if self._enabled:
            self._progress.stop()

    def start(self, name: str, total: int | None) -> None:
        if name == "backfill":
            self._task = self._progress.add_task("backfill", total=total)

    def advance(self, name: str, frames: int) -> None:
        if name == "backfill" and self._task is not None:
            self._progress.advance(self._task, frames)

    def finish(self, name: str) -> None:
        """Nothing to do: the bar stays as it ended."""


@app.command()
def backfill(
    start: Annotated[Optional[str], typer.Option(help="First day, YYYY-MM-DD (default: the archive's first).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last day, YYYY-MM-DD (default: the archive's last).")] = None,
    archive: Annotated[str, typer.Option(help="Local path or s3:// prefix of YYYY-MM-DD/ folders.")] = "./archive",
    store: StoreOption = DEFAULT_STORE,
    checkpoints: Annotated[str, typer.Option(help="Where the model was exported.")] = "./segflow-checkpoints",
    model_tag: Annotated[str, typer.Option(help="Model predicting; partitions are done per tag.")] = "default",
    ordered: Annotated[bool, typer.Option(help="Days continue each other: append, run in date order.")] = False,
    force: Annotated[bool, typer.Option(help="Redo partitions already done.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would run.")] = False,
    concurrency: Annotated[int, typer.Option(help="Partitions at once (unordered).")] = 4,
    predict: Annotated[bool, typer.Option(help="Predict each partition after ingesting it.")] = True,
    segment_length: Annotated[Optional[int], typer.Option(help="Frames per segment (ingest and predict).")] = None,
    lanes: Annotated[Optional[int], typer.Option(help="Sequences side by side when predicting.")] = None,
    s3_endpoint: EndpointOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Ingest and predict an archive partitioned by date, skipping days already done."""
    from flows.backfill import backfill as backfill_flow
    from segflow.config import BackfillParams

    overrides = {
        "archive": archive, "start": start, "end": end, "ordered": ordered, "force": force,
        "dry_run": dry_run, "concurrency": concurrency, "predict": predict, "model_tag": model_tag,
        **_locations(store, checkpoints, s3_endpoint),
        "stream": {"lanes": lanes, "segment_length": segment_length},
        "write": {"segment_length": segment_length},
    }
    params = _validated(BackfillParams, _merge({}, overrides))
    report, failed = _flow_report(
        backfill_flow, params, "backfill", _PartitionBar(enabled=not (as_json or dry_run))
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_backfill(report)
    if failed:
        raise typer.Exit(code=1)


def _print_backfill(report: dict[str, Any]) -> None:
    rows = [r for r in report["rows"] if r["status"] != "skipped"]
    if rows:
        title = "segflow backfill (dry run)" if report["dry_run"] else "segflow backfill"
        table = Table(title=title)
        for column in ("partition", "status", "sequences", "frames", "seconds", "note"):
            table.add_column(column)
        for r in rows:
            status = "would run" if report["dry_run"] else r["status"]
            style = {"failed": "red", "not run": "dim"}.get(r["status"], "")
            table.add_row(
                r["partition"], f"[{style}]{status}[/]" if style else status, str(len(r["sequences"])),
                str(r["frames"]), f"{r['seconds']:.2f}", r["message"],
            )
        Console().print(table)
    console.print(report["headline"])


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


@app.command()
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
            model_tag=model_tag, storage_options=_storage_options(s3_endpoint),
            nightly_cron=nightly_cron, nightly_interval=nightly_interval,
        )
    except (ValueError, SegflowError) as error:
        raise _fail(error) from None
    prefect_serve(*deployments, limit=limit)


def main() -> None:
    """Entry point for ``python -m segflow``."""
    app()
