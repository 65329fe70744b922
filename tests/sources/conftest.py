"""Fixtures for the source tests: tiny synthetic inputs and a local S3 (moto) server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_options() -> Iterator[dict[str, Any]]:
    """Storage options of a moto S3 server holding an empty bucket ``segflow-test``."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="segflow-test")
    try:
        yield {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    finally:
        server.stop()


@pytest.fixture
def s3(s3_options: dict[str, Any], request: pytest.FixtureRequest) -> tuple[Any, str]:
    """An s3fs filesystem and a fresh ``s3://segflow-test/<test name>`` prefix."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    prefix = f"segflow-test/{request.node.name.replace('[', '-').replace(']', '')}"
    if fs.exists(prefix):
        fs.rm(prefix, recursive=True)
    return fs, prefix
