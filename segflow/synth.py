"""Seeded synthetic inputs for tests, demos and benchmarks; nothing is downloaded.

The video and CSV generators share one task, *flash memory*: now and then a short event
happens (the whole frame flashes bright; a spike in feature ``f0``), and the label of each
frame is the parity of the events seen so far (1 after an odd number, else 0). A model must
remember across arbitrarily long gaps, which is what a stateful LSTM streamed over segments
is for; a model that forgets its state at segment boundaries cannot solve it.

Every generator is sized by its arguments, seeded, and writes in bounded memory (one frame or
one row at a time), so it also produces large benchmark inputs.
"""

from __future__ import annotations

import csv
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np

from segflow.errors import ConfigError
from storage.validation import invalid_argument, require_non_negative_int, require_positive_int

#: Encoders tried, in order, after the one requested.
FALLBACK_CODECS = ("libx264", "h264", "mpeg4", "mjpeg")

#: First timestamp written by :func:`synth_series_csv` and tagged on synthetic videos.
SYNTH_START = datetime(2026, 1, 31, 0, 0, 0)


def flash_schedule(
    frames: int,
    rng: np.random.Generator,
    *,
    min_gap: int = 4,
    max_gap: int = 16,
    max_duration: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw when flashes happen and the parity labels they imply.

    Flashes last one to ``max_duration`` frames and start ``min_gap``-``max_gap`` frames
    apart, so consecutive events never merge.

    Args:
        frames: Sequence length.
        rng: Random generator.
        min_gap: Smallest distance between two flash starts.
        max_gap: Largest distance between two flash starts.
        max_duration: Longest flash, in frames (at most ``min_gap - 1``).

    Returns:
        ``(flash, labels)``: ``flash[t]`` is True while a flash is visible; ``labels[t]`` (int8)
        is 1 iff an odd number of flashes started at or before ``t``.
    """
    flash = np.zeros(frames, dtype=bool)
    onsets = np.zeros(frames, dtype=np.int8)
    position = int(rng.integers(2, max_gap))
    while position < frames:
        onsets[position] = 1
        flash[position : position + int(rng.integers(1, max_duration + 1))] = True
        position += int(rng.integers(min_gap, max_gap + 1))
    labels = (np.cumsum(onsets, dtype=np.int64) % 2).astype(np.int8)
    return flash, labels


class _Background:
    """A smooth moving scene: a drifting colour gradient plus a few soft moving blobs."""

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.y, self.x = np.mgrid[0:height, 0:width].astype(np.float32)
        self.y /= max(height - 1, 1)
        self.x /= max(width - 1, 1)
        self.tint = rng.uniform(0.5, 1.0, size=3).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, size=(3, 2))
        self.speed = rng.uniform(0.01, 0.05, size=(3, 2))
        self.radius = rng.uniform(0.1, 0.25, size=3)

    def frame(self, t: int) -> np.ndarray:
        """Return frame ``t`` as float32 RGB in about [20, 150]."""
        gradient = 0.5 + 0.5 * np.sin(2 * np.pi * (self.x + self.y) + 0.05 * t)
        light = 20.0 + 60.0 * gradient
        for blob in range(3):
            cy, cx = 0.5 + 0.35 * np.sin(self.phase[blob] + self.speed[blob] * t)
            dist = (self.y - cy) ** 2 + (self.x - cx) ** 2
            light += 70.0 * np.exp(-dist / (2 * self.radius[blob] ** 2))
        return light[..., None] * self.tint


def available_encoder(preferred: str) -> str:
    """Return ``preferred`` if this PyAV build can encode with it, else the first fallback.

    Raises:
        ConfigError: If no encoder from :data:`FALLBACK_CODECS` is available.
    """
    for name in (preferred, *FALLBACK_CODECS):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for unknown codecs
            continue
        return name
    raise ConfigError(
        f"No video encoder available: tried {preferred!r} and {', '.join(FALLBACK_CODECS)}."
    )


def _write_video(
    path: Path,
    *,
    frames: int,
    height: int,
    width: int,
    fps: int,
    codec: str,
    seed: int,
    flashes: dict[str, int],
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flash, labels = flash_schedule(frames, rng, **flashes)
    scene = _Background(height, width, rng)
    with av.open(str(path), mode="w") as container:
        container.metadata["creation_time"] = SYNTH_START.isoformat() + "Z"
        stream = container.add_stream(codec, rate=fps)
        if not isinstance(stream, av.VideoStream):  # an audio or subtitle codec's name
            raise invalid_argument("codec", "a video encoder", codec)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.options = {"g": str(max(fps, 1))}  # a keyframe a second, like cameras
        for t in range(frames):
            light = scene.frame(t)
            if flash[t]:
                light = light * 0.2 + 220.0  # strong, full-frame: survives any compression
            rgb = np.clip(light, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return labels


def synth_videos(
    out_dir: str | os.PathLike[str],
    *,
    count: int,
    frames: int,
    height: int = 32,
    width: int = 32,
    fps: int = 25,
    seed: int = 0,
    codec: str = "libx264",
    extension: str = ".mp4",
    min_gap: int = 4,
    max_gap: int = 16,
    max_flash_frames: int = 2,
) -> list[str]:
    """Write ``count`` flash-memory videos and their ``<stem>.labels.npy`` sidecars.

    Args:
        out_dir: Directory to write to (created if missing).
        count: Number of videos.
        frames: Frames per video.
        height: Frame height, even (4:2:0 chroma subsampling needs even sizes).
        width: Frame width, even.
        fps: Frame rate.
        seed: Seed; video ``i`` uses ``seed + i``.
        codec: Preferred encoder; falls back along :data:`FALLBACK_CODECS` if unavailable.
        extension: Container, chosen by extension (``.mp4``, ``.mkv``, ``.avi``...).
        min_gap: Smallest distance between two flash starts.
        max_gap: Largest distance between two flash starts.
        max_flash_frames: Longest flash, in frames.

    Returns:
        The video paths, in order (``video_000.mp4``...). Each has per-frame int8 labels in
        ``video_000.labels.npy`` next to it.

    Raises:
        ConfigError: If a size is not positive, or height/width is odd.
    """
    for name, value in (("count", count), ("frames", frames), ("fps", fps)):
        require_positive_int(name, value)
    for name, value in (("height", height), ("width", width)):
        if require_positive_int(name, value) % 2:
            raise invalid_argument(name, "an even number of pixels", value)
    encoder = available_encoder(codec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = out / f"video_{i:03d}{extension}"
        labels = _write_video(
            path,
            frames=frames,
            height=height,
            width=width,
            fps=fps,
            codec=encoder,
            seed=seed + i,
            flashes={"min_gap": min_gap, "max_gap": max_gap, "max_duration": max_flash_frames},
        )
        np.save(out / f"video_{i:03d}.labels.npy", labels)
        paths.append(str(path))
    return paths


def synth_series_csv(
    out_dir: str | os.PathLike[str],
    *,
    count: int,
    rows: int,
    features: int,
    seed: int = 0,
    with_timestamps: bool = True,
    with_labels: bool = True,
    interval: float = 0.1,
) -> list[str]:
    """Write ``count`` multivariate CSV series with the flash-memory task on feature ``f0``.

    Columns: ``timestamp`` (ISO-8601, every ``interval`` seconds from
    :data:`SYNTH_START`) if ``with_timestamps``, ``f0`` ... ``f{features-1}``, and ``label``
    (0/1 parity of spikes in ``f0``) if ``with_labels``. Features are noisy sinusoids; a spike
    adds 6 to ``f0`` for one or two rows.

    Returns:
        The CSV paths (``series_000.csv``...).
    """
    for name, value in (("count", count), ("rows", rows), ("features", features)):
        require_positive_int(name, value)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = out / f"series_{i:03d}.csv"
        _write_series(
            path,
            rows,
            features,
            np.random.default_rng(seed + i),
            with_timestamps=with_timestamps,
            with_labels=with_labels,
            interval=interval,
        )
        paths.append(str(path))
    return paths


def _write_series(
    path: Path,
    rows: int,
    features: int,
    rng: np.random.Generator,
    *,
    with_timestamps: bool,
    with_labels: bool,
    interval: float,
) -> None:
    spikes, labels = flash_schedule(rows, rng)
    frequency = rng.uniform(0.01, 0.2, size=features)
    phase = rng.uniform(0, 2 * np.pi, size=features)
    header = [f"f{j}" for j in range(features)]
    header = (
        (["timestamp"] if with_timestamps else []) + header + (["label"] if with_labels else [])
    )
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for t in range(rows):  # row by row: memory stays flat for any length
            values = np.sin(frequency * t + phase) + 0.1 * rng.standard_normal(features)
            values[0] += 6.0 * spikes[t]
            row: list[Any] = [f"{v:.5g}" for v in values]
            if with_timestamps:
                stamp = SYNTH_START + timedelta(seconds=t * interval)
                row.insert(0, stamp.isoformat(timespec="milliseconds"))
            if with_labels:
                row.append(int(labels[t]))
            writer.writerow(row)


def synth_array(
    path: str | os.PathLike[str],
    frames: int,
    shape: tuple[int, ...],
    dtype: Any = np.float32,
    seed: int = 0,
    *,
    block_frames: int = 1024,
) -> list[str]:
    """Write a ``.npy`` array of ``frames`` random frames of ``shape``, block by block.

    Integer dtypes are uniform over their range (capped at 2**31 - 1), booleans fair coins,
    floats standard normal. The values depend on ``seed`` and ``block_frames`` (one draw per
    block), and memory stays bounded by one block.

    Returns:
        ``[path]``.
    """
    require_non_negative_int("frames", frames)
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=kind, shape=(frames, *shape))
    for begin in range(0, frames, block_frames):
        size = (min(frames, begin + block_frames) - begin, *shape)
        if kind.kind in "iu":
            info = np.iinfo(kind)
            array[begin : begin + size[0]] = rng.integers(
                info.min, min(info.max, 2**31 - 1), size=size, dtype=kind, endpoint=True
            )
        elif kind.kind == "b":
            array[begin : begin + size[0]] = rng.random(size) < 0.5
        else:
            array[begin : begin + size[0]] = rng.standard_normal(size).astype(kind)
    array.flush()
    del array
    return [str(path)]


def synth_image_folder(
    folder: str | os.PathLike[str],
    *,
    frames: int,
    height: int = 32,
    width: int = 32,
    seed: int = 0,
    extension: str = ".png",
) -> list[str]:
    """Write ``frames`` RGB images ``img1.png`` ... ``img<frames>.png`` (unpadded numbers, so
    only a natural sort gets their order right) with flash-memory labels in
    ``<folder>.labels.npy``.

    Returns:
        The image paths in frame order.
    """
    from PIL import Image

    require_positive_int("frames", frames)
    rng = np.random.default_rng(seed)
    flash, labels = flash_schedule(frames, rng)
    scene = _Background(height, width, rng)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(frames):
        light = scene.frame(t) * 0.2 + 220.0 if flash[t] else scene.frame(t)
        path = out / f"img{t + 1}{extension}"
        Image.fromarray(np.clip(light, 0, 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    np.save(f"{str(out).rstrip('/')}.labels.npy", labels)
    return paths
