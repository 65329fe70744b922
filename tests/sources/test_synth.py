"""Synthetic data: determinism, the flash-memory labels, sizes and argument checks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from segflow.errors import ConfigError
from segflow.sources.video import VideoSource
from segflow.synth import (
    available_encoder,
    flash_schedule,
    synth_array,
    synth_series_csv,
    synth_videos,
)


@pytest.mark.parametrize("frames", [1, 5, 100, 1000])
def test_flash_schedule_labels_are_the_parity_of_onsets(frames):
    flash, labels = flash_schedule(frames, np.random.default_rng(0))
    assert flash.shape == labels.shape == (frames,) and labels.dtype == np.int8
    onsets = flash & ~np.concatenate([[False], flash[:-1]])
    np.testing.assert_array_equal(labels, np.cumsum(onsets) % 2)
    if frames >= 100:
        assert 0.2 < labels.mean() < 0.8  # both classes well represented


def test_flash_schedule_separates_events():
    flash, _ = flash_schedule(5000, np.random.default_rng(1), min_gap=4, max_gap=16)
    starts = np.flatnonzero(flash & ~np.concatenate([[False], flash[:-1]]))
    gaps = np.diff(starts)
    assert gaps.min() >= 4 and gaps.max() <= 16
    assert flash.sum() <= 2 * len(starts)  # each flash lasts one or two frames


def _labels(video: str) -> np.ndarray:
    return np.load(Path(video).with_suffix("").with_suffix(".labels.npy"))


def _pixels(video: str) -> np.ndarray:
    return np.concatenate([b.frames for b in VideoSource(video).blocks(64)])


def test_videos_are_deterministic(tmp_path):
    first = synth_videos(tmp_path / "a", count=2, frames=40, height=16, width=16, seed=5)
    second = synth_videos(tmp_path / "b", count=2, frames=40, height=16, width=16, seed=5)
    assert [Path(p).name for p in first] == ["video_000.mp4", "video_001.mp4"]
    for a, b in zip(first, second, strict=True):
        assert _labels(a).dtype == np.int8 and _labels(a).shape == (40,)
        np.testing.assert_array_equal(_labels(a), _labels(b))
        np.testing.assert_array_equal(_pixels(a), _pixels(b))
    # Each video of a batch draws its own flashes.
    assert not np.array_equal(_labels(first[0]), _labels(first[1]))


def test_encoder_fallback():
    assert available_encoder("no-such-codec") in ("libx264", "h264", "mpeg4", "mjpeg")
    assert available_encoder("mpeg4") == "mpeg4"


@pytest.mark.parametrize(
    "kwargs",
    [{"count": 0}, {"frames": -1}, {"height": 15}, {"width": 0}, {"fps": 0}],
)
def test_video_arguments_are_checked(tmp_path, kwargs):
    args = {"count": 1, "frames": 4, "height": 16, "width": 16, "fps": 25} | kwargs
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        synth_videos(tmp_path, **args)


def test_series_csv_columns_and_labels(tmp_path):
    paths = synth_series_csv(tmp_path, count=2, rows=200, features=4, seed=0)
    assert [Path(p).name for p in paths] == ["series_000.csv", "series_001.csv"]
    with open(paths[0], newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["timestamp", "f0", "f1", "f2", "f3", "label"]
    assert len(rows) == 201 and rows[1][0] == "2026-01-31T00:00:00.000"
    f0 = np.array([float(r[1]) for r in rows[1:]])
    labels = np.array([int(r[-1]) for r in rows[1:]])
    spike = f0 > 3.5  # sinusoid + noise stays near [-1.5, 1.5]; spikes add 6
    onsets = spike & ~np.concatenate([[False], spike[:-1]])
    np.testing.assert_array_equal(labels, np.cumsum(onsets) % 2)


def test_series_csv_without_optional_columns(tmp_path):
    (path,) = synth_series_csv(
        tmp_path, count=1, rows=3, features=2, with_timestamps=False, with_labels=False
    )
    assert Path(path).read_text().splitlines()[0] == "f0,f1"


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, np.bool_])
def test_synth_array(tmp_path, dtype):
    (path,) = synth_array(tmp_path / "x.npy", 10, (3,), dtype, seed=0, block_frames=4)
    array = np.load(path)
    assert array.shape == (10, 3) and array.dtype == dtype
    np.testing.assert_array_equal(
        array, np.load(synth_array(tmp_path / "y.npy", 10, (3,), dtype, seed=0, block_frames=4)[0])
    )
    assert len(np.unique(array)) > 1
