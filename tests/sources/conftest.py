"""Fixtures for the source tests: tiny synthetic inputs and an S3 prefix (moto)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.synth import synth_videos

#: Tiny test videos: 40 frames of 32x32 at 25 fps.
FRAMES, SIZE, FPS = 40, 32, 25


@dataclass(frozen=True)
class SynthVideo:
    """A synthetic test video and what it was written with."""

    path: str
    labels: np.ndarray
    frames: int = FRAMES
    size: int = SIZE
    fps: int = FPS


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> SynthVideo:
    """One synthetic flash-memory video and its per-frame labels (do not modify it)."""
    out = tmp_path_factory.mktemp("videos")
    (path,) = synth_videos(out, count=1, frames=FRAMES, height=SIZE, width=SIZE, fps=FPS, seed=0)
    return SynthVideo(path, np.load(Path(path).with_suffix("").with_suffix(".labels.npy")))


@pytest.fixture
def video_copy(video_file: SynthVideo, tmp_path: Path) -> Path:
    """A private copy of the synthetic video, free to damage."""
    target = tmp_path / "clip.mp4"
    target.write_bytes(Path(video_file.path).read_bytes())
    return target


@pytest.fixture
def s3_options(s3_storage_options: dict[str, Any]) -> dict[str, Any]:
    """Storage options of the session's moto S3 server (from tests/conftest.py)."""
    return s3_storage_options


@pytest.fixture
def s3(s3_storage_options: dict[str, Any], s3_bucket: str) -> tuple[Any, str]:
    """An s3fs filesystem and a fresh, empty ``<bucket>/sources-<uuid>`` prefix."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_storage_options)
    return fs, f"{s3_bucket}/sources-{uuid.uuid4().hex}"
