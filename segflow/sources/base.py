"""The interface every ingest source implements.

A source yields a sequence's frames in blocks, in time order, never the whole sequence at
once. :meth:`Source.probe` is cheap (metadata plus the first frame) and validates what it can
before anything is written; errors found later (a truncated video, a NaN in row 9,000) raise
:class:`~segflow.errors.SourceError` from :meth:`Source.blocks`, naming the source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SourceProbe:
    """What a source knows about itself before it is read.

    Attributes:
        uri: The source's path or URL.
        frame_shape: Shape of one frame (after any resize/grayscale transform).
        dtype: Frame dtype as stored.
        length: Number of frames if known up front, else None (e.g. some videos).
        fingerprint: Identity of the source content (size + content hash or equivalent);
            equal fingerprints mean the same frames.
        frame_rate: Frames per second (video), else None.
        sample_interval: Seconds between samples (series with timestamps), else None.
        start_time: ISO-8601 time of the first frame if known.
        partition: A partition key (e.g. ``2026-01-31``) if the source path has one.
        has_timestamps: Whether blocks carry per-frame timestamps.
        label_shape: Shape of one frame's label if the source carries labels, else None.
        label_dtype: Labels dtype if the source carries labels.
        class_names: Names of the label classes, by class index, when the labels are text
            (see :mod:`segflow.sources.classnames`); empty for numeric labels.
    """

    uri: str
    frame_shape: tuple[int, ...]
    dtype: np.dtype[Any]
    length: int | None
    fingerprint: str
    frame_rate: float | None = None
    sample_interval: float | None = None
    start_time: str | None = None
    partition: str | None = None
    has_timestamps: bool = False
    label_shape: tuple[int, ...] | None = None
    label_dtype: np.dtype[Any] | None = None
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrameBlock:
    """Consecutive frames ``[start, start + len(frames))`` of a source.

    Attributes:
        start: Index of the first frame in the sequence.
        frames: Array of shape ``(n, *frame_shape)``.
        timestamps: Seconds from the first frame, shape ``(n,)``, or None.
        labels: Per-frame labels, shape ``(n, *label_shape)``, or None.
    """

    start: int
    frames: np.ndarray
    timestamps: np.ndarray | None = None
    labels: np.ndarray | None = None

    @property
    def stop(self) -> int:
        """Index one past the last frame."""
        return self.start + len(self.frames)


class Source(ABC):
    """One input sequence: a video, an image folder, an array file, a CSV series, a Zarr array."""

    uri: str

    @abstractmethod
    def probe(self) -> SourceProbe:
        """Open the source, validate what can be checked cheaply, and describe it.

        Raises:
            SourceError: If the source cannot be opened or is invalid (naming the source).
        """

    def provisional_fingerprint(self) -> str | None:
        """A cheap identity standing in for the fingerprint while a deferred hash is pending.

        None (the default) for sources that cannot hash their content while it is read.
        """
        return None

    def defer_fingerprint(self) -> bool:
        """Take the content hash from the frames as they are read, if this source can.

        Returns:
            Whether the fingerprint is deferred (the default: no).
        """
        return False

    @abstractmethod
    def blocks(self, block_frames: int, start: int = 0) -> Iterator[FrameBlock]:
        """Yield frames from ``start`` on, in order, in blocks of at most ``block_frames``.

        Every block but the last holds exactly ``block_frames`` frames, so blocks stay aligned
        to chunks when ``start`` and ``block_frames`` are multiples of the segment length.
        Sources that can seek do so; others decode and discard frames before ``start``.

        Raises:
            SourceError: If the source turns out to be corrupt or invalid while reading.
        """
