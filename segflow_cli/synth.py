"""``segflow synth``: seeded synthetic inputs (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["synth_app"]

synth_app = typer.Typer(help="Write seeded synthetic inputs (nothing is downloaded).")


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

    paths = synth_videos(
        out_dir, count=count, frames=frames, height=size, width=size, fps=fps, seed=seed
    )
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
