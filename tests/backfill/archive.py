"""Test helpers: a small archive partitioned by date, and a tiny exported model."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

FEATURES = 3
FRAMES = 6  # per camera per day
CAMERAS = ("cam1", "cam2")


def days(count: int, first: str = "2026-01-01") -> list[str]:
    """``count`` consecutive ISO dates from ``first``."""
    start = datetime.date.fromisoformat(first)
    return [str(start + datetime.timedelta(days=i)) for i in range(count)]


def write_day(root: Path, day: str, *, seed: int, broken: bool = False) -> None:
    """One folder of ``.npy`` recordings, one per camera; ``broken`` writes a corrupt one."""
    folder = root / day
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for camera in CAMERAS:
        frames = rng.normal(size=(FRAMES, FEATURES)).astype("float32")
        np.save(folder / f"{camera}.npy", frames)
    if broken:
        (folder / f"{CAMERAS[0]}.npy").write_bytes(b"not an npy file at all")


def make_archive(root: Path, count: int = 10, *, broken: str | None = None) -> list[str]:
    """An archive of ``count`` days (``broken``: the day with a corrupt file); its dates."""
    dates = days(count)
    for i, day in enumerate(dates):
        write_day(root, day, seed=i, broken=day == broken)
    return dates


def export_tiny_model(checkpoints: str, tag: str = "m") -> None:
    """Export an untrained 4-unit LSTM for ``FEATURES``-feature frames under ``tag``."""
    from segflow.checkpoint import export_model
    from segflow.config import ModelConfig
    from segflow.engine.engine import StreamingEngine
    from storage import open_store

    config = ModelConfig(frame_shape=(FEATURES,), lstm_units=[4], task="binary")
    engine = StreamingEngine(config, lanes=2, segment_length=4)
    export_model(open_store(checkpoints), tag, engine, config, meta={"checkpoint": "test"})
