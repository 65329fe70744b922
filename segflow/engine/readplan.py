"""What a :class:`~segflow.engine.reader.StepReader` reads, as plain data: no I/O, no arrays.

:func:`plan_reader` checks a set of sequences against each other and returns their
:class:`ReaderLayout` (the schedule's shape, the batch arrays' shapes and dtypes, each
sequence's :class:`Chunking`); :func:`step_chunk_keys` says which chunks one step of the
schedule needs. A chunk is named by a :data:`ChunkKey` ``(sequence index, field, chunk index)``,
the unit the reader reads, caches and shares between steps.

>>> from segflow.engine.scheduler import schedule
>>> chunking = [Chunking(length=5, frames_chunk=4), Chunking(length=3, frames_chunk=4)]
>>> [step_chunk_keys(step, chunking) for step in schedule([5, 3], 2, 3)]
[[(0, 'frames', 0), (1, 'frames', 0)], [(0, 'frames', 0), (0, 'frames', 1)]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segflow.engine.chunks import ChunkSource, SequenceChunks
from segflow.engine.scheduler import Step, count_steps
from segflow.errors import ConfigError

__all__ = [
    "FRAMES",
    "LABELS",
    "ChunkKey",
    "Chunking",
    "ReaderLayout",
    "chunk_keys",
    "plan_reader",
    "step_chunk_keys",
]

FRAMES = "frames"
LABELS = "labels"
#: (sequence index, FRAMES or LABELS, chunk index): one unit of reading and caching.
ChunkKey = tuple[int, str, int]
#: ``{name: (shape, dtype)}`` of the arrays of one batch.
BatchSpec = dict[str, tuple[tuple[int, ...], np.dtype[Any]]]


@dataclass(frozen=True)
class Chunking:
    """How one sequence's rows are chunked: all the chunk-key plan needs to know of it.

    Attributes:
        length: Frames of the sequence.
        frames_chunk: Rows per chunk of its frames.
        labels_chunk: Rows per chunk of its labels (None: no labels read).
        per_sequence_labels: Whether its labels are one row for the whole sequence.
        labels_length: Rows of its labels, when fewer than its frames (targets shifted by a
            forecast horizon: the last frames have none); None: one per frame.
    """

    length: int
    frames_chunk: int
    labels_chunk: int | None = None
    per_sequence_labels: bool = False
    labels_length: int | None = None

    @property
    def label_rows(self) -> int:
        """Rows of labels the frames can be matched with (``length`` unless fewer)."""
        return self.length if self.labels_length is None else min(self.labels_length, self.length)

    @classmethod
    def of(cls, sequence: SequenceChunks, *, with_labels: bool) -> Chunking:
        """Return the chunking of ``sequence`` (of its labels only if ``with_labels``)."""
        labels = sequence.labels if with_labels else None
        return cls(
            length=sequence.length,
            frames_chunk=sequence.frames.chunk_length,
            labels_chunk=None if labels is None else labels.chunk_length,
            per_sequence_labels=sequence.per_sequence_labels,
            labels_length=(
                labels.length
                if labels is not None
                and not sequence.per_sequence_labels
                and labels.length < sequence.length
                else None
            ),
        )


@dataclass(frozen=True)
class ReaderLayout:
    """The checked shape of a reader: its schedule and the arrays of its batches.

    Attributes:
        ids: Sequence ids, in schedule order.
        lengths: Frames per sequence.
        lanes: Number of lanes B.
        segment_length: Frames per step L.
        with_labels: Whether batches carry ``labels``.
        num_steps: Steps of the whole schedule.
        frame_shape: Shape of one frame.
        frame_dtype: Dtype of the frames (the store's).
        label_shape: Shape of one label row (None without labels).
        chunking: Each sequence's :class:`Chunking`.
    """

    ids: tuple[str, ...]
    lengths: tuple[int, ...]
    lanes: int
    segment_length: int
    with_labels: bool
    num_steps: int
    frame_shape: tuple[int, ...]
    frame_dtype: np.dtype[Any]
    label_shape: tuple[int, ...] | None
    chunking: tuple[Chunking, ...]

    def batch_spec(self) -> BatchSpec:
        """Return ``{name: (shape, dtype)}`` of every array of a batch."""
        b, length = self.lanes, self.segment_length
        spec = {
            FRAMES: ((b, length, *self.frame_shape), self.frame_dtype),
            "mask": ((b, length), np.dtype(bool)),
            "reset": ((b,), np.dtype(bool)),
            "ends": ((b,), np.dtype(bool)),
        }
        if self.label_shape is not None:
            spec[LABELS] = ((b, length, *self.label_shape), np.dtype(np.float32))
        return spec


def plan_reader(
    sequences: Sequence[SequenceChunks], *, lanes: int, segment_length: int, with_labels: bool
) -> ReaderLayout:
    """Check that ``sequences`` can share one batch layout and return it.

    Args:
        sequences: The sequences, in the order the schedule takes them.
        lanes: Number of lanes B.
        segment_length: Frames per step L.
        with_labels: Whether batches carry ``labels`` (every sequence must have labels).

    Returns:
        The layout of the reader's batches.

    Raises:
        ConfigError: On an empty ``sequences``, a bad ``lanes``/``segment_length``, sequences
            of different frame shape, dtype or label shape, or missing labels.

    >>> from segflow.engine.chunks import ArrayChunks
    >>> seq = SequenceChunks("a", ArrayChunks(np.zeros((5, 2), np.uint8), chunk_length=4))
    >>> layout = plan_reader([seq], lanes=2, segment_length=3, with_labels=False)
    >>> layout.num_steps, layout.batch_spec()["frames"]
    (2, ((2, 3, 2), dtype('uint8')))
    """
    if not sequences:
        raise ConfigError("Received an empty list of sequence ids; expected at least one.")
    lengths = tuple(s.length for s in sequences)
    num_steps = count_steps(lengths, lanes, segment_length)  # validates both
    frame_shape, frame_dtype = _row_layout(sequences, lambda s: s.frames, FRAMES)
    label_shape = (
        _row_layout(sequences, lambda s: s.labels, LABELS, same_dtype=False)[0]
        if with_labels
        else None
    )
    return ReaderLayout(
        ids=tuple(s.id for s in sequences),
        lengths=lengths,
        lanes=lanes,
        segment_length=segment_length,
        with_labels=with_labels,
        num_steps=num_steps,
        frame_shape=frame_shape,
        frame_dtype=frame_dtype,
        label_shape=label_shape,
        chunking=tuple(Chunking.of(s, with_labels=with_labels) for s in sequences),
    )


def chunk_keys(
    sequence: int, field: str, chunk_length: int, start: int, stop: int
) -> list[ChunkKey]:
    """Keys of the chunks holding rows ``[start, stop)`` (``stop > start``) of one array.

    >>> chunk_keys(0, FRAMES, chunk_length=4, start=3, stop=9)
    [(0, 'frames', 0), (0, 'frames', 1), (0, 'frames', 2)]
    """
    first, last = start // chunk_length, (stop - 1) // chunk_length
    return [(sequence, field, c) for c in range(first, last + 1)]


def step_chunk_keys(
    step: Step, chunking: Sequence[Chunking], *, with_labels: bool = False
) -> list[ChunkKey]:
    """Keys of the chunks ``step`` reads, in first-use order, once each.

    Args:
        step: A step of the schedule over the sequences ``chunking`` describes.
        chunking: Each sequence's chunking, indexed as the step's slots index sequences.
        with_labels: Whether label chunks are read too (a per-sequence label is chunk 0).

    Returns:
        The keys; idle lanes and empty slots need none.
    """
    keys: list[ChunkKey] = []
    for slot in step.slots:
        if slot.sequence is None or slot.stop <= slot.start:
            continue
        i, seq = slot.sequence, chunking[slot.sequence]
        keys += chunk_keys(i, FRAMES, seq.frames_chunk, slot.start, slot.stop)
        if not with_labels:
            continue
        if seq.per_sequence_labels:
            keys.append((i, LABELS, 0))
        else:
            assert seq.labels_chunk is not None  # plan_reader checked every sequence has labels
            stop = min(slot.stop, seq.label_rows)  # targets end before the frames do
            if stop > slot.start:
                keys += chunk_keys(i, LABELS, seq.labels_chunk, slot.start, stop)
    return list(dict.fromkeys(keys))


def _row_layout(
    sequences: Sequence[SequenceChunks],
    source: Callable[[SequenceChunks], ChunkSource | None],
    name: str,
    *,
    same_dtype: bool = True,
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Return the row shape and dtype shared by every sequence's ``name`` array.

    With ``same_dtype=False`` only shapes must agree (labels are cast to float32 anyway).
    """
    first: tuple[str, tuple[int, ...], np.dtype[Any]] | None = None
    for seq in sequences:
        chunks = source(seq)
        if chunks is None:
            raise ConfigError(
                f"Sequence {seq.id!r} has no {name}; expected {name} for every sequence."
            )
        if first is None:
            first = (seq.id, chunks.row_shape, chunks.dtype)
        elif chunks.row_shape != first[1] or (same_dtype and chunks.dtype != first[2]):
            raise ConfigError(
                f"Sequence {seq.id!r} has {name} rows of shape {chunks.row_shape} and dtype "
                f"{chunks.dtype}; expected those of sequence {first[0]!r}: {first[1]} and "
                f"{first[2]}."
            )
    assert first is not None
    return first[1], first[2]
