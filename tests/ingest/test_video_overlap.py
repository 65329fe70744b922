"""Video ingest overlaps decoding with writing, and stays exact and crash-safe doing so.

The writer keeps up to ``write_workers`` blocks in flight while the source decodes the next
one (a video block is often a single chunk, so one block in flight left the encoding on one
core). These tests check that chunks of different blocks are written concurrently, that
progress is recorded only for the finished prefix (a crash resumes from a frame whose chunks
are on disk), and that a noisy H.264 clip is stored exactly as PyAV decodes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from segflow.config import WriteConfig
from segflow.ingest import ingest_source
from segflow.ingest.writer import BlockWriter
from segflow.sources.base import FrameBlock
from segflow.synth import available_encoder
from storage.local import LocalStore
from storage.sequences import SequenceMeta, SequenceRepository, array_member

SEGMENT = 8


class SlowStore(LocalStore):
    """A local store whose chunk writes take a while, recording how many overlap.

    ``fail_at`` names a chunk key whose write raises, as a full disk would.
    """

    def __init__(self, root: Path, *, delay: float = 0.02, fail_at: str | None = None) -> None:
        super().__init__(root)
        self.delay, self.fail_at = delay, fail_at
        self.active = self.most_active = self.completed = 0
        self._lock = threading.Lock()

    def write_chunk(self, key: str, parts: Sequence[Any]) -> None:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.delay)
            if key == self.fail_at:
                raise OSError(f"No space left on device writing {key!r}")
            super().write_chunk(key, parts)
            with self._lock:
                self.completed += 1
        finally:
            with self._lock:
                self.active -= 1


def _writer(store: SlowStore, frames: int, workers: int) -> tuple[BlockWriter, list[int]]:
    repo = SequenceRepository(store)
    group = repo.create(
        "clip",
        frame_shape=(6, 8, 3),
        dtype="uint8",
        meta=SequenceMeta(segment_length=SEGMENT),
        with_timestamps=True,
    )
    progress: list[int] = []
    writer = BlockWriter(
        store, group, offset=0, capacity_hint=frames, workers=workers, on_progress=progress.append
    )
    return writer, progress


def _blocks(data: np.ndarray) -> list[FrameBlock]:
    """One chunk per block, like a 720p video's 16-frame blocks."""
    return [FrameBlock(s, data[s : s + SEGMENT]) for s in range(0, len(data), SEGMENT)]


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(6 * SEGMENT, 6, 8, 3), dtype="uint8")


def test_chunks_of_consecutive_blocks_are_written_concurrently(
    tmp_path: Path, frames: np.ndarray
) -> None:
    store = SlowStore(tmp_path / "store", delay=0.05)
    writer, progress = _writer(store, len(frames), workers=2)
    outstanding = []  # blocks not yet on disk when the caller gets to decode the next one
    for count, block in enumerate(_blocks(frames), start=1):
        writer.write(block, None, None)  # frames only: one chunk write per block
        outstanding.append(count - store.completed)
    writer.close(len(frames))
    # Two blocks keep both workers busy while the next one is decoded; waiting for all but
    # the newest (the old behaviour) left one worker idle during decoding.
    assert max(outstanding) == 2
    assert store.most_active == 2
    assert progress == sorted(progress) and progress[-1] == len(frames)
    # Not marked complete: that is the ingest's last step, after the writer closed.
    stored = array_member(SequenceRepository(store).group("clip"), "frames")
    np.testing.assert_array_equal(stored[:], frames)


def test_one_worker_writes_one_chunk_at_a_time(tmp_path: Path, frames: np.ndarray) -> None:
    store = SlowStore(tmp_path / "store", delay=0.005)
    writer, _ = _writer(store, len(frames), workers=1)
    for block in _blocks(frames):
        writer.write(block, None, None)
    writer.close(len(frames))
    assert store.most_active == 1


def test_a_failed_chunk_stops_progress_before_its_block(tmp_path: Path, frames: np.ndarray) -> None:
    # chunk 3 fails while chunk 4 (the next block, in flight with it) may well succeed: the
    # durable progress must still stop at frame 3 * SEGMENT, where a resume starts again.
    store = SlowStore(tmp_path / "store", fail_at="sequences/clip/frames/c.3.0.0.0")
    writer, progress = _writer(store, len(frames), workers=2)
    with pytest.raises(OSError, match="No space left"):
        try:
            for block in _blocks(frames):
                writer.write(block, None, None)
            writer.close(len(frames))
        except BaseException:
            writer.abort()
            raise
    assert progress and max(progress) <= 3 * SEGMENT


@pytest.fixture(scope="module")
def noisy_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small H.264 clip (where available) of a moving gradient under per-frame noise."""
    path = tmp_path_factory.mktemp("clip") / "noisy.mp4"
    rng = np.random.default_rng(1)
    height, width, count = 48, 64, 45
    y, x = np.mgrid[0:height, 0:width]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(available_encoder("libx264"), rate=25)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(count):
            light = (x * 3 + y * 2 + 5 * t) % 200 + rng.normal(0, 8, size=(height, width))
            rgb = np.clip(np.stack([light, light * 0.8, 255 - light], axis=-1), 0, 255)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_ingested_clip_equals_pyav_decoding(noisy_clip: Path, tmp_path: Path) -> None:
    with av.open(str(noisy_clip)) as container:
        expected = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    repo = SequenceRepository(LocalStore(tmp_path / "store"))
    # One segment per block and two blocks in flight: many blocks, all overlapping.
    config = WriteConfig(segment_length=SEGMENT, block_bytes=1, write_workers=2)
    result = ingest_source(str(noisy_clip), repo, sequence_id="clip", write_config=config)
    assert (result.status, result.frames) == ("written", len(expected))
    np.testing.assert_array_equal(repo.frames("clip")[:], expected)
    stamps = np.asarray(repo.group("clip")["timestamps"][:])
    assert stamps[0] == 0 and np.all(np.diff(stamps) > 0)


@pytest.mark.parametrize("compression", ["lz4", "none"])
@pytest.mark.parametrize("extra", [1, SEGMENT - 1])  # frames in the last, partial chunk
def test_a_last_partial_chunk_is_stored_as_zarr_stores_it(
    tmp_path: Path, frames: np.ndarray, compression: str, extra: int
) -> None:
    # The writer pads it with the fill value itself, without zarr's event loop: the bytes
    # must still be exactly zarr's, so any Zarr reads the store.
    data = frames[: 3 * SEGMENT + extra]
    stores = {}
    for name in ("writer", "zarr"):
        store = LocalStore(tmp_path / name)
        group = SequenceRepository(store).create(
            "clip",
            frame_shape=(6, 8, 3),
            dtype="uint8",
            meta=SequenceMeta(segment_length=SEGMENT),
            compression=compression,  # type: ignore[arg-type]
        )
        if name == "zarr":
            array = array_member(group, "frames")
            array.resize(data.shape)
            array[:] = data
        else:
            writer = BlockWriter(
                store, group, offset=0, capacity_hint=None, workers=2, on_progress=lambda _: None
            )
            for block in _blocks(data):
                writer.write(block, None, None)
            writer.close(len(data))
        stores[name] = store
    keys = [k for k in stores["zarr"].list("sequences/clip/frames") if "/c." in k]
    assert len(keys) == 4
    for key in keys:
        assert stores["writer"].read_bytes(key) == stores["zarr"].read_bytes(key), key
    stored = array_member(SequenceRepository(stores["writer"]).group("clip"), "frames")
    np.testing.assert_array_equal(stored[:], data)
