"""Chunk sources: the time-chunked rows a :class:`~segflow.engine.reader.StepReader` reads.

A :class:`ChunkSource` is one array (frames or labels of one sequence) read a whole chunk at a
time. :class:`ArrayChunks` views an array in memory, :class:`ZarrChunks` reads a stored Zarr
array (decoding chunks directly where the layout allows), :class:`OffsetChunks` is a suffix of
another source (a sequence resumed part-way). :class:`SequenceChunks` bundles one sequence's
frames and labels; :func:`open_sequence` opens a complete stored sequence as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from segflow.errors import ConfigError, StoreError
from storage.chunks import DirectChunks

if TYPE_CHECKING:
    import zarr

    from storage.base import Store
    from storage.sequences import SequenceRepository

__all__ = [
    "ArrayChunks",
    "ChunkSource",
    "OffsetChunks",
    "SequenceChunks",
    "ZarrChunks",
    "open_sequence",
    "read_rows",
]


class ChunkSource(Protocol):
    """Time-chunked rows of one array: what :class:`~segflow.engine.reader.StepReader` reads."""

    @property
    def length(self) -> int:
        """Number of readable rows."""

    @property
    def chunk_length(self) -> int:
        """Rows per chunk (the last chunk may be shorter)."""

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row (a frame, a label)."""

    @property
    def dtype(self) -> np.dtype[Any]:
        """Dtype of the rows."""

    @property
    def cheap_reads(self) -> bool:
        """Whether a chunk read is cheap enough to do in the consumer's thread.

        True for memory and for uncompressed chunks on a local disk: their reads cost less
        than handing them to reader threads (futures, contention for the GIL).
        """

    def read_chunk(self, index: int) -> np.ndarray:
        """Return rows ``[index * chunk_length, min((index + 1) * chunk_length, length))``."""


@dataclass(frozen=True)
class ArrayChunks:
    """A :class:`ChunkSource` over an array already in memory (chunks are views, not copies).

    Args:
        array: The rows, time first.
        chunk_length: Rows per chunk.

    >>> chunks = ArrayChunks(np.arange(10), chunk_length=4)
    >>> chunks.length, chunks.read_chunk(2).tolist()
    (10, [8, 9])
    """

    array: np.ndarray
    chunk_length: int

    @property
    def length(self) -> int:
        """Number of rows of the array."""
        return int(self.array.shape[0])

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row."""
        return tuple(int(n) for n in self.array.shape[1:])

    @property
    def dtype(self) -> np.dtype[Any]:
        """Dtype of the array."""
        return self.array.dtype

    @property
    def cheap_reads(self) -> bool:
        """Always: chunks are views."""
        return True

    def read_chunk(self, index: int) -> np.ndarray:
        """Return a view of chunk ``index``."""
        start = index * self.chunk_length
        return self.array[start : start + self.chunk_length]


class ZarrChunks:
    """A :class:`ChunkSource` over the first ``length`` rows of a Zarr array in a store.

    Args:
        store: The store holding the array (its keys are read for the fast path).
        array: The array, opened from ``store.zarr_store()``.
        length: Number of committed rows (the sequence's ``meta.length``).
        direct: Decode chunks directly when the array's layout allows it (see
            :class:`storage.chunks.DirectChunks`); False always reads through
            ``array[start:stop]`` (the slower path, kept for comparisons).
    """

    def __init__(
        self, store: Store, array: zarr.Array, length: int, *, direct: bool = True
    ) -> None:
        self.length = length
        self.chunk_length = int(array.chunks[0])
        self.row_shape = tuple(int(n) for n in array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        self._array = array
        self._store = store
        self._direct = DirectChunks.for_array(array) if direct else None

    @property
    def fast(self) -> bool:
        """Whether chunks are decoded directly (else read through ``array[start:stop]``)."""
        return self._direct is not None

    @property
    def cheap_reads(self) -> bool:
        """Whether chunks are uncompressed files on a local disk (see :class:`ChunkSource`)."""
        return self._direct is not None and self._direct.uncompressed and self._store.local_reads

    def read_chunk(self, index: int) -> np.ndarray:
        """Read and decode chunk ``index``, trimmed to ``length``."""
        start = index * self.chunk_length
        stop = min(start + self.chunk_length, self.length)
        if self._direct is None:
            # zarr types a read as NDArrayLike; with the default buffers it is an ndarray.
            return cast("np.ndarray", self._array[start:stop])
        return self._direct.read(self._store, index)[: stop - start]


class OffsetChunks:
    """Rows ``[offset, length)`` of a chunk source, seen as a source of their own.

    Chunks keep the base's chunk length, so a chunk of this view may straddle two chunks of
    the base (read and joined).

    Args:
        base: The source.
        offset: First row of the view (``0 <= offset <= base.length``).

    Raises:
        ConfigError: If ``offset`` is outside ``[0, base.length]``.

    >>> view = OffsetChunks(ArrayChunks(np.arange(10), chunk_length=4), offset=6)
    >>> view.length, view.read_chunk(0).tolist()
    (4, [6, 7, 8, 9])
    """

    def __init__(self, base: ChunkSource, offset: int) -> None:
        if not 0 <= offset <= base.length:
            raise ConfigError(
                f"Received an invalid value for argument `offset`, expected an integer in "
                f"[0, {base.length}], got {offset!r}."
            )
        self.base = base
        self.offset = offset
        self.length = base.length - offset
        self.chunk_length = base.chunk_length
        self.row_shape = base.row_shape
        self.dtype = base.dtype
        self.cheap_reads = base.cheap_reads

    def read_chunk(self, index: int) -> np.ndarray:
        """Return rows ``[index * chunk_length, ...)`` of the view (one or two base chunks)."""
        start = self.offset + index * self.chunk_length
        return read_rows(self.base, start, start + self.chunk_length)


def read_rows(
    source: ChunkSource, start: int, stop: int, cache: dict[int, np.ndarray] | None = None
) -> np.ndarray:
    """Rows ``[start, stop)`` of ``source`` (``stop`` clipped to its length), read as whole
    chunks: a view of the chunk when one holds them all, else the chunks' rows joined.

    Args:
        source: The chunk source.
        start: First row (``>= 0``).
        stop: One past the last row.
        cache: Chunks already read, by index; chunks read here are added to it, so rows
            read again (a window's history, the next block) cost no second read.

    >>> read_rows(ArrayChunks(np.arange(10), chunk_length=4), 3, 9).tolist()
    [3, 4, 5, 6, 7, 8]
    """
    stop = min(stop, source.length)
    if stop <= start:
        return np.empty((0, *source.row_shape), source.dtype)
    size = source.chunk_length
    parts = []
    for index in range(start // size, (stop - 1) // size + 1):
        chunk = cache.get(index) if cache is not None else None
        if chunk is None:
            chunk = source.read_chunk(index)
            if cache is not None:
                cache[index] = chunk
        parts.append(chunk[max(start - index * size, 0) : stop - index * size])
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class SequenceChunks:
    """One sequence as a :class:`~segflow.engine.reader.StepReader` reads it.

    Attributes:
        id: The sequence id.
        frames: Its frames, time first.
        labels: Its labels (one row per frame, or one row if ``per_sequence_labels``), or None.
        per_sequence_labels: Whether ``labels`` is one row for the whole sequence.

    >>> seq = SequenceChunks("cam-1", ArrayChunks(np.zeros((5, 2)), chunk_length=2))
    >>> seq.length, seq.labels is None
    (5, True)
    """

    id: str
    frames: ChunkSource
    labels: ChunkSource | None = None
    per_sequence_labels: bool = False

    @property
    def length(self) -> int:
        """Frames of the sequence."""
        return self.frames.length


def open_sequence(
    repo: SequenceRepository, sequence_id: str, *, with_labels: bool, direct: bool = True
) -> SequenceChunks:
    """Open a complete stored sequence as chunk sources (its frames and, optionally, labels).

    Args:
        repo: The repository holding the sequence.
        sequence_id: The sequence id.
        with_labels: Whether to open its labels too.
        direct: Decode chunks directly where the layout allows (see :class:`ZarrChunks`).

    Returns:
        The sequence's frames (its committed ``meta.length`` rows) and labels (one row per
        frame, or one row for a per-sequence label).

    Raises:
        IncompleteSequenceError: If the sequence is not marked complete.
        SequenceNotFoundError: If the sequence does not exist.
        ConfigError: If ``with_labels`` and the sequence has no labels.
        StoreError: If an array has fewer rows than the sequence's meta promises.
    """
    # Same check as repo.frames(sequence_id), keeping the meta it reads (one read, not two).
    meta = repo.require_complete(sequence_id)
    frames = repo.frames(sequence_id, require_complete=False)
    _check_rows(repo, sequence_id, "frames", frames, meta.length)
    labels, per_sequence = None, meta.label_kind == "per_sequence"
    if with_labels:
        array = repo.labels(sequence_id)
        if array is None:
            raise ConfigError(
                f"Sequence {sequence_id!r} in store {repo.store.url!r} has no labels; "
                "expected labels for every sequence since with_labels=True."
            )
        rows = 1 if per_sequence else meta.length
        _check_rows(repo, sequence_id, "labels", array, rows)
        labels = ZarrChunks(repo.store, array, rows, direct=direct)
    frame_chunks = ZarrChunks(repo.store, frames, meta.length, direct=direct)
    return SequenceChunks(sequence_id, frame_chunks, labels, per_sequence)


def _check_rows(
    repo: SequenceRepository, sequence_id: str, name: str, array: zarr.Array, rows: int
) -> None:
    if array.shape[0] < rows:
        raise StoreError(
            f"Sequence {sequence_id!r} in store {repo.store.url!r}: its {name} array has "
            f"{array.shape[0]} rows, expected at least {rows}."
        )
