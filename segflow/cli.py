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


def _fail(error: Exception) -> typer.Exit:
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
) -> None:
    """Run the main job end to end on embedded defaults: synth → ingest → inspect."""
    from segflow.synth import synth_videos

    sources = workdir / "sources"
    store = str(workdir / "store")
    console.print(f"[bold]1/3 synth[/] videos with flash events → {sources}")
    synth_videos(sources, count=6, frames=240, height=64, width=64, fps=24, seed=seed)
    console.print(f"[bold]2/3 ingest[/] into Zarr store {store}")
    params = IngestParams(sources=[str(sources / "*.mp4")], store=StoreConfig(url=store))
    _run_ingest(params, as_json=False)
    console.print("[bold]3/3 inspect[/]")
    inspect(store=store, as_json=False, s3_endpoint=None)
    console.print(f"Store written to [bold]{store}[/]; inputs in {sources}.")


def main() -> None:
    """Entry point for ``python -m segflow``."""
    app()
