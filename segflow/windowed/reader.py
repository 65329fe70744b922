"""The window reader: the batches of a :class:`~segflow.windowed.plan.WindowPlan`, as arrays.

The rows of a pool are read once (whole chunks, each chunk once, copied straight into one
array: the rows of the blocks it touches plus the ``N-1`` rows of history before each run of
neighbouring blocks), and every batch is cut from it by index: a window is never stored, so
memory holds a pool of rows, not ``N`` times it.

Batches::

    frames (b, N, *row_shape)  the input dtype
    mask   (b, N) bool         all True (every window is full)
    labels (b, *label_row)     float32, label row t of the window ending at row t
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segflow.engine.chunks import ChunkSource, SequenceChunks
from segflow.errors import ConfigError
from segflow.windowed.plan import Pool, WindowPlan, plan_windows
from storage.validation import invalid_argument, require_non_negative_int, require_positive_int

__all__ = ["DEFAULT_POOL_BYTES", "PoolRows", "WindowReader"]

#: Default bytes of rows a pool holds (what bounds the reader's memory, with its batches).
DEFAULT_POOL_BYTES = 8 * 2**20
#: Bytes a pool's arrays are aligned to (Eigen's largest alignment).
ALIGNMENT = 64
#: Blocks a default-sized pool spans, so that a pool mixes windows from several places.
_BLOCKS_PER_POOL = 8


@dataclass(frozen=True)
class PoolRows:
    """The rows one pool needs, and where each of its windows lies in them.

    Attributes:
        first_batch: Index in the epoch of the first batch cut from these rows.
        frames: (R, *row_shape) input rows of every block the pool touches, concatenated.
        labels: (S, *label_row) float32 targets of the pool's windows' blocks.
        starts: (W,) int64: row of ``frames`` where each window begins.
        targets: (W,) int64: row of ``labels`` holding each window's target.
    """

    first_batch: int
    frames: np.ndarray
    labels: np.ndarray
    starts: np.ndarray
    targets: np.ndarray


class WindowReader:
    """Batches of windows cut from sequences of input rows and targets, shuffled per epoch.

    Args:
        sequences: Sequences shaped by the recipe: ``frames`` are the model's input rows,
            ``labels`` row ``t`` is the target of input row ``t`` (possibly fewer rows than
            ``frames``: the last rows have no target).
        time_steps: Rows per window N.
        batch_size: Windows per batch.
        seed: Seed of the shuffles.
        shuffle: Shuffle every epoch (False: natural order, for validation).
        pool_bytes: Bytes of rows read and shuffled together (rounded to whole batches).
        block_chunks: Chunks per shuffled block; default: about an eighth of a pool.

    Raises:
        ConfigError: On a bad argument, no sequences, sequences of different row shapes,
            dtypes or label shapes, a sequence without labels or with per-sequence labels,
            or no window at all.

    >>> from segflow.engine.chunks import ArrayChunks
    >>> seq = SequenceChunks("s", ArrayChunks(np.arange(6.0)[:, None], 4),
    ...                      ArrayChunks(np.arange(6.0), 4))
    >>> reader = WindowReader([seq], time_steps=3, batch_size=3, shuffle=False)
    >>> batch = next(reader.iter_batches(0))
    >>> batch["frames"][..., 0].tolist(), batch["labels"].tolist()
    ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]], [2.0, 3.0, 4.0])
    """

    def __init__(
        self,
        sequences: Sequence[SequenceChunks],
        *,
        time_steps: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        pool_bytes: int = DEFAULT_POOL_BYTES,
        block_chunks: int | None = None,
    ) -> None:
        self.time_steps = require_positive_int("time_steps", time_steps)
        self.batch_size = require_positive_int("batch_size", batch_size)
        require_positive_int("pool_bytes", pool_bytes)
        self.sequences = tuple(sequences)
        _check_sequences(self.sequences)
        first = self.sequences[0]
        assert first.labels is not None  # checked above
        self.row_shape = first.frames.row_shape
        self.dtype = first.frames.dtype
        self.label_shape = first.labels.row_shape
        row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize + 4 * int(
            np.prod(self.label_shape)
        )
        pool_batches = max(1, pool_bytes // max(row_bytes, 1) // self.batch_size)
        chunks = [seq.frames.chunk_length for seq in self.sequences]
        if block_chunks is None:
            block_chunks = max(1, pool_batches * self.batch_size // _BLOCKS_PER_POOL // max(chunks))
        #: The epochs' order (pure: see :mod:`segflow.windowed.plan`).
        self.plan: WindowPlan = plan_windows(
            [_targets(seq) for seq in self.sequences],
            chunks,
            time_steps=self.time_steps,
            batch_size=self.batch_size,
            seed=seed,
            shuffle=shuffle,
            pool_batches=pool_batches,
            block_chunks=block_chunks,
        )

    @property
    def num_batches(self) -> int:
        """Batches per epoch."""
        return self.plan.num_batches

    @property
    def num_windows(self) -> int:
        """Windows per epoch."""
        return self.plan.num_windows

    def check_position(self, epoch: int, start_batch: int) -> None:
        """Refuse a negative ``epoch`` or a ``start_batch`` that is not a batch of an epoch.

        Raises:
            ConfigError: Naming the argument.
        """
        require_non_negative_int("epoch", epoch)
        if not isinstance(start_batch, int) or not 0 <= start_batch < self.num_batches:
            raise invalid_argument(
                "start_batch", f"a batch index in [0, {self.num_batches})", start_batch
            )

    def iter_pools(self, epoch: int, start_batch: int = 0) -> Iterator[PoolRows]:
        """The rows of each pool of epoch ``epoch`` from the one holding batch ``start_batch``.

        The first pool's windows start at batch ``start_batch`` (earlier ones are dropped).

        Raises:
            ConfigError: If ``epoch`` is negative or ``start_batch`` outside the epoch.
        """
        self.check_position(epoch, start_batch)
        first = start_batch // self.plan.pool_batches
        for index in range(first, self.plan.num_pools):
            pool = self.plan.pool(epoch, index)
            skip = start_batch - pool.first_batch if index == first else 0
            yield self._read_pool(pool, skip)

    def iter_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Yield batches ``start_batch ..`` of epoch ``epoch`` (see the module docstring).

        Raises:
            ConfigError: If ``epoch`` is negative or ``start_batch`` outside the epoch.
        """
        steps = np.arange(self.time_steps)
        for rows in self.iter_pools(epoch, start_batch):
            for lo in range(0, len(rows.starts), self.batch_size):
                starts = rows.starts[lo : lo + self.batch_size]
                frames = rows.frames[starts[:, None] + steps]
                yield {
                    "frames": frames,
                    "mask": np.ones(frames.shape[:2], dtype=bool),
                    "labels": rows.labels[rows.targets[lo : lo + self.batch_size]],
                }

    def _read_pool(self, pool: Pool, skip_batches: int) -> PoolRows:
        keep = slice(skip_batches * self.batch_size, None)
        block_ids, row = pool.block[keep], pool.row[keep]
        # The target rows each block the pool touches needs: [lo, hi) of its sequence.
        used, inverse = np.unique(block_ids, return_inverse=True)
        lo = np.full(len(used), np.iinfo(np.int64).max)
        hi = np.zeros(len(used), dtype=np.int64)
        np.minimum.at(lo, inverse, row)
        np.maximum.at(hi, inverse, row + 1)
        sequence = np.array([self.plan.blocks[b].sequence for b in used], dtype=np.int64)
        history = self.time_steps - 1
        # Input rows [lo - (N-1), hi) and targets [lo, hi) of each block, neighbouring
        # blocks' ranges merged (``used`` is sorted: by sequence, then row).
        sources = [s.frames for s in self.sequences]
        frames, frame_at = _read_ranges(sources, sequence, lo - history, hi, self.dtype)
        targets = [_labels(s) for s in self.sequences]
        labels, label_at = _read_ranges(targets, sequence, lo, hi, np.dtype(np.float32))
        return PoolRows(
            first_batch=pool.first_batch + skip_batches,
            frames=frames,
            labels=labels,
            starts=frame_at[inverse] + row - history,
            targets=label_at[inverse] + row,
        )


def _read_ranges(
    sources: list[ChunkSource],
    sequence: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    dtype: np.dtype[Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[start[i], stop[i])`` of ``sources[sequence[i]]`` for every ``i``, in one array.

    The ranges are sorted by sequence, then start. Ranges of a sequence that overlap or touch
    are read once, as one run, and every chunk is copied straight into the result (of
    ``dtype``): each chunk a pool needs is read once, and nothing but the result and one chunk
    is held. The result is aligned for TensorFlow, which then uses it as it is (see
    :func:`aligned_empty`).

    Returns:
        The rows, and per range ``i`` the offset ``o`` such that row ``r`` of its sequence is
        at ``o + r`` in them.
    """
    runs: list[list[int]] = []  # [sequence, start, stop] of each run
    for seq, a, b in zip(sequence.tolist(), start.tolist(), stop.tolist(), strict=True):
        if runs and runs[-1][0] == seq and a <= runs[-1][2]:
            runs[-1][2] = max(runs[-1][2], b)
        else:
            runs.append([seq, a, b])
    shape = (sum(b - a for _, a, b in runs), *sources[0].row_shape)
    out = aligned_empty(shape, dtype)
    offsets = np.empty(len(sequence), dtype=np.int64)
    at, i, last = 0, 0, (-1, -1, out[:0])  # the chunk read last: (sequence, index, rows)
    for seq, a, b in runs:
        while i < len(sequence) and sequence[i] == seq and start[i] < b:
            offsets[i] = at - a
            i += 1
        last = _copy_rows(sources[seq], seq, a, b, out[at : at + b - a], last)
        at += b - a
    return out, offsets


def _copy_rows(
    source: ChunkSource,
    seq: int,
    start: int,
    stop: int,
    out: np.ndarray,
    last: tuple[int, int, np.ndarray],
) -> tuple[int, int, np.ndarray]:
    """Copy rows ``[start, stop)`` of ``source`` into ``out`` chunk by chunk; return the last
    chunk read (a next run of the same sequence may begin in it)."""
    size = source.chunk_length
    for index in range(start // size, (stop - 1) // size + 1):
        if last[:2] != (seq, index):
            last = (seq, index, source.read_chunk(index))
        lo, hi = max(start, index * size), min(stop, (index + 1) * size)
        out[lo - start : hi - start] = last[2][lo - index * size : hi - index * size]
    return last


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """An uninitialised array whose data starts on a :data:`ALIGNMENT`-byte boundary.

    A NumPy array handed to TensorFlow (a ``numpy_function``'s result) is used in place when
    its data is aligned for Eigen, and copied whole when not; ``np.empty`` of a large array
    starts 16 bytes into its pages.

    >>> a = aligned_empty((3, 5), np.dtype(np.float32))
    >>> a.shape, a.dtype, a.ctypes.data % ALIGNMENT, a.flags.c_contiguous
    ((3, 5), dtype('float32'), 0, True)
    """
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + ALIGNMENT, dtype=np.uint8)
    skip = -raw.ctypes.data % ALIGNMENT
    return raw[skip : skip + size].view(dtype).reshape(shape)


def _labels(seq: SequenceChunks) -> ChunkSource:
    assert seq.labels is not None  # checked by _check_sequences
    return seq.labels


def _targets(seq: SequenceChunks) -> int:
    """Rows of ``seq`` with both an input row and a target."""
    return min(seq.frames.length, _labels(seq).length)


def _check_sequences(sequences: tuple[SequenceChunks, ...]) -> None:
    if not sequences:
        raise invalid_argument("sequences", "at least one sequence", [])
    first = sequences[0]
    for seq in sequences:
        if seq.per_sequence_labels:
            raise ConfigError(
                f"Received an invalid value for argument `sequences`: sequence {seq.id!r} has "
                "one label for the whole sequence, expected one target per row (windows need "
                "per-row labels)."
            )
        if seq.labels is None:
            raise ConfigError(
                f"Received an invalid value for argument `sequences`: sequence {seq.id!r} has no "
                "labels, expected labels for every sequence to train or evaluate on windows."
            )
        for name, want, got in (
            ("row shape", first.frames.row_shape, seq.frames.row_shape),
            ("dtype", first.frames.dtype, seq.frames.dtype),
            ("label shape", _labels(first).row_shape, seq.labels.row_shape),
        ):
            if want != got:
                raise ConfigError(
                    f"Received an invalid value for argument `sequences`: sequence {seq.id!r} "
                    f"has {name} {got}, expected {want} like sequence {first.id!r}."
                )
