"""The ``segflow`` command line (Typer + Rich).

Stable forms (scripts call them)::

    segflow synth videos OUT_DIR [--count N --frames N --size N --seed N]
    segflow ingest SOURCE... --store URL [--id ID] [--segment-length N] [--labels PATH]
    segflow inspect --store URL --json
    segflow demo
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
    compression: Annotated[str, typer.Option(help="lz4, zstd or none.")] = "lz4",
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

    with FrameProgress(console, enabled=not as_json):
        state = ingest_flow(params, return_state=True)
    report = state.result(raise_on_failure=False)
    if not isinstance(report, dict):  # the flow crashed before producing a report
        raise _fail(report if isinstance(report, Exception) else RuntimeError(state.message))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_ingest_report(report)
    if state.is_failed():
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


def _run_flow(flow_fn: Any, params: Any, name: str) -> dict[str, Any]:
    with FrameProgress(console):
        state = flow_fn(params, return_state=True)
    result = state.result(raise_on_failure=False)
    if state.is_failed() or not isinstance(result, dict):
        raise _fail(result if isinstance(result, Exception) else RuntimeError(f"{name} failed: {state.message}"))
    return result


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

    options = _storage_options(s3_endpoint)
    overrides = {
        "store": {"url": store, "storage_options": options},
        "checkpoints": {"url": checkpoints, "storage_options": options},
        "epochs": epochs,
        "model_tag": model_tag,
        "stream": {"lanes": lanes, "segment_length": segment_length},
    }
    try:
        params = TrainParams(**_merge(_load_config_file(config), overrides))
    except (ValueError, SegflowError) as error:
        raise _fail(error) from None
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

    options = _storage_options(s3_endpoint)
    overrides = {
        "store": {"url": store, "storage_options": options},
        "checkpoints": {"url": checkpoints, "storage_options": options},
        "model_tag": model_tag,
        "stream": {"lanes": lanes, "segment_length": segment_length},
        "selection": {"ids": ids or None},
        "recompute": recompute,
    }
    try:
        params = PredictParams(**_merge({}, overrides))
    except (ValueError, SegflowError) as error:
        raise _fail(error) from None
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

    params = DemoParams(**_merge({}, {"workdir": str(workdir), "seed": seed, "epochs": epochs, "videos": videos}))
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


def main() -> None:
    """Entry point for ``python -m segflow``."""
    app()
