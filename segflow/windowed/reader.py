"""The window reader: the batches of a :class:`~segflow.windowed.plan.WindowPlan`, as arrays.

The rows of a pool are read once (whole chunks, each chunk once, plus the ``N-1`` rows of
history before each block) into one array, and every batch is cut from it by index: a window
is never stored, so memory holds a pool of rows, not ``N`` times it.

Batches::

    frames (b, N, *row_shape)  the input dtype
    mask   (b, N) bool         all True (every window is full)
    labels (b, *label_row)     float32, label row t of the window ending at row t
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from segflow.engine.chunks import ChunkSource, SequenceChunks, read_rows
from segflow.errors import ConfigError
from segflow.windowed.plan import Pool, WindowPlan, plan_windows
from storage.validation import invalid_argument, require_non_negative_int, require_positive_int

__all__ = ["DEFAULT_POOL_BYTES", "PoolRows", "WindowReader"]

#: Default bytes of rows a pool holds (what bounds the reader's memory, with its batches).
DEFAULT_POOL_BYTES = 8 * 2**20
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
        # One segment per block the pool touches: its windows' rows, plus N-1 rows before.
        used, inverse = np.unique(block_ids, return_inverse=True)
        lo = np.full(len(used), np.iinfo(np.int64).max)
        hi = np.zeros(len(used), dtype=np.int64)
        np.minimum.at(lo, inverse, row)
        np.maximum.at(hi, inverse, row + 1)
        history = self.time_steps - 1
        frame_offsets = np.concatenate([[0], np.cumsum(hi - lo + history)[:-1]])
        label_offsets = np.concatenate([[0], np.cumsum(hi - lo)[:-1]])
        seqs = [self.sequences[self.plan.blocks[b].sequence] for b in used]
        frames = _gather(
            [(seq.frames, int(a) - history, int(b)) for seq, a, b in zip(seqs, lo, hi, strict=True)]
        )
        labels = _gather(
            [(_labels(seq), int(a), int(b)) for seq, a, b in zip(seqs, lo, hi, strict=True)]
        )
        offset = row - lo[inverse]
        return PoolRows(
            first_batch=pool.first_batch + skip_batches,
            frames=frames,
            labels=labels.astype(np.float32, copy=False),
            starts=frame_offsets[inverse] + offset,
            targets=label_offsets[inverse] + offset,
        )


def _gather(ranges: list[tuple[ChunkSource, int, int]]) -> np.ndarray:
    """Rows of every ``(source, start, stop)`` range, concatenated.

    Ranges of one source share a chunk cache, so a chunk that neighbouring blocks both need
    (a block's history lies in the chunk before it) is read once.
    """
    first = ranges[0][0]
    out = np.empty((sum(b - a for _, a, b in ranges), *first.row_shape), dtype=first.dtype)
    caches: dict[int, dict[int, np.ndarray]] = {}
    at = 0
    for source, start, stop in ranges:
        cache = caches.setdefault(id(source), {})
        out[at : at + stop - start] = read_rows(source, start, stop, cache)
        at += stop - start
    return out


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
