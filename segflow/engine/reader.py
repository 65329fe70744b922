"""The step reader: the batch of each step of a lane schedule, as NumPy arrays, read ahead.

:class:`StepReader` plans which chunks each step needs (:mod:`segflow.engine.readplan`), has
them read once each, ahead of use (:class:`~segflow.engine.buffers.Prefetcher`), and copies
each step's rows into recycled batch arrays (:class:`~segflow.engine.buffers.BatchBuffers`);
or, for the ``tf.data`` pipeline, serves groups of steps as the rows they read and gather
indices (:meth:`StepReader.iter_groups`, :mod:`segflow.engine.stepindex`).
The batch format and what keeps it fast are described in :mod:`segflow.engine.pipeline`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from segflow.engine.buffers import BatchBuffers, Prefetcher
from segflow.engine.chunks import ArrayChunks, SequenceChunks, open_sequence
from segflow.engine.readplan import (
    FRAMES,
    LABELS,
    BatchSpec,
    ChunkKey,
    ReaderLayout,
    plan_reader,
    step_chunk_keys,
)
from segflow.engine.scheduler import Step, schedule
from segflow.engine.stepindex import (
    GroupIndex,
    StepGroup,
    StepIndexPlan,
    fill_group,
    group_index,
)
from segflow.errors import ConfigError
from storage.validation import require_positive_int

if TYPE_CHECKING:
    from storage.sequences import SequenceRepository

__all__ = ["DEFAULT_WORKERS", "GROUP_BYTES", "MAX_GROUP_STEPS", "StepReader"]

#: Default number of reader threads: enough to overlap file reads with decoding on 2 cores.
DEFAULT_WORKERS = 4
#: Batch bytes a group of steps (see :meth:`StepReader.iter_groups`) aims at, at most.
GROUP_BYTES = 8 * 2**20
#: Steps per group at most: enough to make the Python per step negligible.
MAX_GROUP_STEPS = 8


class StepReader:
    """Builds the batch of each step of the lane schedule over complete sequences.

    Build it over stored sequences with ``StepReader(repo, ids, ...)``, over chunk sources of
    any kind with :meth:`from_sources`, or over arrays in memory with :meth:`from_arrays`; all
    three go through this constructor.

    Args:
        repo: The repository to read; None when ``ids`` holds only opened sequences.
        ids: The sequences, in the order the schedule takes them: ids of complete sequences
            in ``repo``, or sequences already opened as :class:`SequenceChunks` (what
            :meth:`from_sources` passes).
        lanes: Number of lanes B.
        segment_length: Frames per step L (need not match the stored chunk length).
        with_labels: Whether batches carry ``labels`` (every sequence must have labels). A
            sequence's labels may be shorter than its frames (targets shifted by a horizon,
            see :mod:`segflow.engine.shaping`): rows past them are NaN, which the engine
            weighs zero.
        direct: Decode stored chunks directly where the layout allows (see
            :class:`~segflow.engine.chunks.ZarrChunks`); False reads every stored chunk
            through zarr's ``array[...]``. Opened sequences are taken as they are.

    Raises:
        IncompleteSequenceError: If a sequence is not marked complete.
        SequenceNotFoundError: If a sequence does not exist.
        ConfigError: On an empty ``ids``, a bad ``lanes``/``segment_length``, sequences of
            different frame shape, dtype or label shape, missing labels, or an id without a
            ``repo``.

    Example::

        reader = StepReader(repo, ["cam-1", "cam-2"], lanes=2, segment_length=32)
        for step, batch in zip(reader.steps(), reader.iter_batches()):
            ...
    """

    def __init__(
        self,
        repo: SequenceRepository | None,
        ids: Sequence[str | SequenceChunks],
        *,
        lanes: int,
        segment_length: int,
        with_labels: bool = False,
        direct: bool = True,
    ) -> None:
        sequences = tuple(_open(repo, entry, with_labels, direct) for entry in ids)
        layout = plan_reader(
            sequences, lanes=lanes, segment_length=segment_length, with_labels=with_labels
        )
        #: The checked layout of the reader's schedule and batches.
        self.layout: ReaderLayout = layout
        self.ids = layout.ids
        self.lengths = layout.lengths
        self.lanes = layout.lanes
        self.segment_length = layout.segment_length
        self.with_labels = layout.with_labels
        self.num_steps = layout.num_steps
        self.frame_shape = layout.frame_shape
        self.frame_dtype = layout.frame_dtype
        self.label_shape = layout.label_shape
        self._sequences = sequences
        self._spec = layout.batch_spec()
        self._positions = np.arange(segment_length)
        self._cache: dict[ChunkKey, np.ndarray] = {}
        self._buffers = BatchBuffers(self._spec)
        self._index_plan: StepIndexPlan | None = None
        self._row_buffers: dict[int, BatchBuffers] = {}

    @classmethod
    def from_sources(
        cls,
        sequences: Sequence[SequenceChunks],
        *,
        lanes: int,
        segment_length: int,
        with_labels: bool = False,
    ) -> StepReader:
        """Build a reader over chunk sources of any kind (stored, in memory, offset views).

        Args:
            sequences: The sequences, in the order the schedule takes them.
            lanes: Number of lanes B.
            segment_length: Frames per step L.
            with_labels: Whether batches carry ``labels`` (every sequence must have labels).

        Returns:
            The reader.

        Raises:
            ConfigError: As :class:`StepReader`.
        """
        return cls(
            None, sequences, lanes=lanes, segment_length=segment_length, with_labels=with_labels
        )

    @classmethod
    def from_arrays(
        cls,
        frames: Sequence[np.ndarray],
        labels: Sequence[np.ndarray] | None = None,
        *,
        lanes: int,
        segment_length: int,
        chunk_length: int | None = None,
        per_sequence_labels: bool = False,
    ) -> StepReader:
        """Build a reader over sequences already in memory (tests, benchmarks, small data).

        Args:
            frames: One (T, *frame_shape) array per sequence.
            labels: One array per sequence, (T, ...) or, if ``per_sequence_labels``, (1, ...).
            lanes: Number of lanes B.
            segment_length: Frames per step L.
            chunk_length: Rows per chunk (default ``segment_length``); a chunk is a view.
            per_sequence_labels: Whether each labels array is one row for the whole sequence.

        Returns:
            The reader; sequence ids are the indices ``"0"``, ``"1"``, ...

        Raises:
            ConfigError: On a number of ``labels`` arrays other than of ``frames`` arrays,
                label rows that do not match the frames, a bad ``chunk_length``, or as
                :class:`StepReader`.

        >>> reader = StepReader.from_arrays([np.arange(5)], lanes=1, segment_length=3)
        >>> [batch["frames"].tolist() for batch in reader.iter_batches()]
        [[[0, 1, 2]], [[3, 4, 0]]]
        """
        if labels is not None and len(labels) != len(frames):
            raise ConfigError(
                f"Received {len(labels)} labels arrays for {len(frames)} frames arrays; "
                "expected one per sequence."
            )
        chunk = segment_length if chunk_length is None else chunk_length
        require_positive_int("chunk_length", chunk)
        if labels is not None and not per_sequence_labels:
            for i, (f, y) in enumerate(zip(frames, labels, strict=True)):
                if len(y) != len(f):
                    raise ConfigError(
                        f"Sequence {i} has {len(f)} frames but {len(y)} label rows; expected "
                        "one label row per frame (or per_sequence_labels=True and one row)."
                    )
        sequences = [
            SequenceChunks(
                id=str(i),
                frames=ArrayChunks(np.asarray(f), chunk),
                labels=None if labels is None else ArrayChunks(np.asarray(labels[i]), chunk),
                per_sequence_labels=per_sequence_labels,
            )
            for i, f in enumerate(frames)
        ]
        return cls.from_sources(
            sequences, lanes=lanes, segment_length=segment_length, with_labels=labels is not None
        )

    # -- the schedule ----------------------------------------------------------------------

    def steps(self, start_step: int = 0) -> Iterator[Step]:
        """Return the schedule's steps from ``start_step`` (what each batch carries)."""
        return schedule(self.lengths, self.lanes, self.segment_length, start_step=start_step)

    def batch_spec(self) -> BatchSpec:
        """Return ``{name: (shape, dtype)}`` of every array of a batch."""
        return self.layout.batch_spec()

    def chunk_keys(self, step: Step) -> list[ChunkKey]:
        """Return the keys of the chunks ``step`` reads (see :mod:`segflow.engine.readplan`)."""
        return step_chunk_keys(step, self.layout.chunking, with_labels=self.with_labels)

    # -- reading ---------------------------------------------------------------------------

    def read_step(self, step: Step) -> dict[str, np.ndarray]:
        """Return the batch of ``step``, reading synchronously.

        Chunks of the previous call stay cached, so reading steps in order reads each chunk
        once. Not thread-safe; :meth:`iter_batches` is the fast way to read many steps.
        """
        needed = self.chunk_keys(step)
        cache = self._cache
        self._cache = {key: cache[key] if key in cache else self._read(key) for key in needed}
        return self._assemble(step, self._cache.__getitem__, self._buffers)

    def iter_batches(
        self, start_step: int = 0, *, readahead: int = 2, workers: int | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yield the batch of every step from ``start_step`` on, in schedule order.

        Args:
            start_step: First step (a resume cursor); the batches equal the suffix of a full
                pass from step 0.
            readahead: Steps whose chunks are being read while a batch is assembled, beyond
                the next one (which is always requested before a batch is handed out).
                Memory holds about ``readahead + 2`` steps of chunks.
            workers: Reader threads; 0 reads in the calling thread, when the batch is
                assembled. Default (None): 0 when every chunk read is cheap (uncompressed on
                a local disk, or in memory: measured 5-10% faster for small frames, where
                threads cost more than they hide), else :data:`DEFAULT_WORKERS`. 2-4 measured
                best for compressed chunks on a local disk with 2 cores; an S3 store is
                latency-bound, so more threads (16, say) help there.

        Raises:
            ConfigError: On a negative ``readahead`` or ``workers``, or a bad ``start_step``
                (raised here, not at the first ``next``).
        """
        workers = self._workers(readahead, workers)
        return self._iter_batches(self.steps(start_step), readahead, workers)

    def _workers(self, readahead: int, workers: int | None) -> int:
        """Check ``readahead`` and ``workers``; return the number of reader threads."""
        if readahead < 0 or (workers is not None and workers < 0):
            raise ConfigError(
                f"Received readahead={readahead!r}, workers={workers!r}; expected "
                "readahead >= 0 and workers >= 0."
            )
        if workers is None:
            return 0 if self.cheap_reads else DEFAULT_WORKERS
        return workers

    @property
    def cheap_reads(self) -> bool:
        """Whether every chunk this reader reads is cheap to read inline (see ``workers``)."""
        sources = [s.frames for s in self._sequences]
        if self.with_labels:
            sources += [s.labels for s in self._sequences if s.labels is not None]
        return all(source.cheap_reads for source in sources)

    def _iter_batches(
        self, steps: Iterator[Step], readahead: int, workers: int
    ) -> Iterator[dict[str, np.ndarray]]:
        pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segflow-read")
            if workers
            else None
        )
        chunks = Prefetcher(pool, self._read)
        buffers = BatchBuffers(self._spec)
        try:
            first = itertools.islice(steps, readahead + 1)
            window = deque((s, chunks.acquire(self.chunk_keys(s))) for s in first)
            while window:
                step, keys = window.popleft()
                batch = self._assemble(step, chunks.get, buffers)
                # Request the next step before releasing this one, so a chunk both need is
                # kept rather than read again.
                upcoming = next(steps, None)
                if upcoming is not None:
                    window.append((upcoming, chunks.acquire(self.chunk_keys(upcoming))))
                chunks.release(keys)
                yield batch
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    # -- groups of steps (what the tf.data pipeline serves) ------------------------------------

    @property
    def group_steps(self) -> int:
        """Default steps per group: :data:`GROUP_BYTES` of batches, 1 to :data:`MAX_GROUP_STEPS`."""
        batch_bytes = sum(
            int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            for shape, dtype in self._spec.values()
        )
        return max(1, min(MAX_GROUP_STEPS, GROUP_BYTES // max(batch_bytes, 1)))

    def group_starts(self, start_step: int = 0, group_steps: int | None = None) -> list[int]:
        """First steps of the groups from ``start_step``, then ``num_steps`` (the end).

        Groups grow 1, 2, 4, ... steps up to ``group_steps`` (default :attr:`group_steps`),
        so the first step is served after reading one step's chunks, not a whole group's.

        >>> StepReader.from_arrays([np.zeros(64)], lanes=1, segment_length=2).group_starts(
        ...     3, group_steps=4)
        [3, 4, 6, 10, 14, 18, 22, 26, 30, 32]
        """
        size = require_positive_int(
            "group_steps", self.group_steps if group_steps is None else group_steps
        )
        starts, step, grow = [], start_step, 1
        while step < self.num_steps:
            starts.append(step)
            step, grow = step + grow, min(2 * grow, size)
        return [*starts, self.num_steps]

    def iter_groups(
        self,
        start_step: int = 0,
        *,
        group_steps: int | None = None,
        first_group: int = 0,
        readahead: int = 1,
        workers: int | None = None,
    ) -> Iterator[StepGroup]:
        """Yield the steps from ``start_step`` on in groups (see :class:`StepGroup`).

        Each chunk a group needs is read once (chunks shared with the next group are kept),
        and only the rows the group uses are copied, in one concatenation per field: no Python
        runs per lane. The groups are those of :meth:`group_starts`; every step's batch is
        the same whatever the grouping, so resuming at any step is exact. The rows arrays are
        recycled once nothing (no tensor either) references them.

        Args:
            start_step: First step (a resume cursor).
            group_steps: Steps per group at most (default :attr:`group_steps`); groups are
                those of :meth:`group_starts`.
            first_group: First group to yield (a restart part-way).
            readahead: Groups whose chunks are read ahead (as in :meth:`iter_batches`).
            workers: Reader threads (as in :meth:`iter_batches`).

        Raises:
            ConfigError: On a bad ``start_step``, ``group_steps``, ``readahead`` or
                ``workers`` (raised here, not at the first ``next``).
        """
        self.steps(start_step)  # checks it
        starts = self.group_starts(start_step, group_steps)
        workers = self._workers(readahead, workers)
        if self._index_plan is None:
            self._index_plan = StepIndexPlan.of(self.layout)
        size = max((b - a for a, b in itertools.pairwise(starts)), default=1)
        capacity = size * self.lanes * self.segment_length  # rows a group never exceeds
        plan = self._index_plan
        indices = (
            group_index(plan, a, b - a, pad_row=capacity)
            for a, b in itertools.pairwise(starts[first_group:])
        )
        return self._iter_groups(indices, readahead, workers, self._group_buffers(capacity))

    def _group_buffers(self, capacity: int) -> BatchBuffers:
        """Recycled rows arrays for groups of ``capacity`` rows, kept for the next pass."""
        buffers = self._row_buffers.get(capacity)
        if buffers is None:
            spec: BatchSpec = {FRAMES: ((capacity + 1, *self.frame_shape), self.frame_dtype)}
            if self.label_shape is not None:
                spec[LABELS] = ((capacity + 2, *self.label_shape), np.dtype(np.float32))
            buffers = self._row_buffers[capacity] = BatchBuffers(spec)
        return buffers

    def _iter_groups(
        self,
        indices: Iterator[GroupIndex],
        readahead: int,
        workers: int,
        buffers: BatchBuffers,
    ) -> Iterator[StepGroup]:
        pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segflow-read")
            if workers
            else None
        )
        chunks = Prefetcher(pool, self._read)
        try:
            window = deque(
                (index, chunks.acquire(_group_keys(index)))
                for index in itertools.islice(indices, readahead + 1)
            )
            while window:
                index, keys = window.popleft()
                group = fill_group(index, chunks.get, buffers.take())
                upcoming = next(indices, None)
                if upcoming is not None:
                    window.append((upcoming, chunks.acquire(_group_keys(upcoming))))
                chunks.release(keys)
                yield group
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _read(self, key: ChunkKey) -> np.ndarray:
        sequence, field, index = key
        seq = self._sequences[sequence]
        source = seq.frames if field == FRAMES else seq.labels
        assert source is not None  # keys for labels exist only with labels
        return source.read_chunk(index)

    def _assemble(
        self, step: Step, get: Callable[[ChunkKey], np.ndarray], buffers: BatchBuffers
    ) -> dict[str, np.ndarray]:
        # Arrays nothing else holds (see BatchBuffers), so nothing handed out is rewritten.
        # Writing the padding's zeros measured ~2x faster than np.zeros for every array.
        # One tight loop over lanes, no per-lane helper calls: at 32 lanes of small feature
        # vectors the Python per lane is most of the cost of a step.
        batch = buffers.take()
        slots = step.slots
        valid = [slot.stop - slot.start for slot in slots]  # 0 on idle lanes
        np.less(self._positions, np.array(valid)[:, None], out=batch["mask"])
        batch["reset"][...] = [slot.reset for slot in slots]
        ends = batch["ends"]
        ends[...] = False
        frames = batch[FRAMES]
        labels = batch[LABELS] if self.with_labels else None
        full = self.segment_length
        sequences = self._sequences
        for lane, slot in enumerate(slots):
            n = valid[lane]
            if n < full:
                frames[lane, n:] = 0
                if labels is not None:
                    labels[lane, n:] = 0
            if not n or slot.sequence is None:
                continue
            i, start, stop = slot.sequence, slot.start, slot.stop
            seq = sequences[i]
            ends[lane] = stop == seq.length
            _copy_rows(frames[lane], get, (i, FRAMES), seq.frames.chunk_length, start, stop)
            if labels is None:
                continue
            assert seq.labels is not None  # checked when the reader was built
            if seq.per_sequence_labels:
                labels[lane, :n] = get((i, LABELS, 0))[0]
                continue
            known = min(stop, seq.labels.length)  # targets may end before the frames
            if known > start:
                _copy_rows(labels[lane], get, (i, LABELS), seq.labels.chunk_length, start, known)
            if known < stop:
                labels[lane, max(known - start, 0) : n] = np.nan  # no target: no loss
        return batch


def _open(
    repo: SequenceRepository | None, entry: str | SequenceChunks, with_labels: bool, direct: bool
) -> SequenceChunks:
    """Return ``entry`` opened: as it is if already open, else from ``repo``."""
    if isinstance(entry, SequenceChunks):
        return entry
    if repo is None:
        raise ConfigError(
            f"Received sequence id {entry!r} without a repository; expected a "
            "SequenceRepository to open it from, or an opened SequenceChunks."
        )
    return open_sequence(repo, entry, with_labels=with_labels, direct=direct)


def _group_keys(index: GroupIndex) -> list[ChunkKey]:
    return index.frames.keys + (index.labels.keys if index.labels is not None else [])


def _copy_rows(
    out: np.ndarray,
    get: Callable[[ChunkKey], np.ndarray],
    field: tuple[int, str],
    chunk_length: int,
    start: int,
    stop: int,
) -> None:
    """Copy rows ``[start, stop)`` of one array, whose chunks ``get(field + (index,))`` returns."""
    index, offset = divmod(start, chunk_length)
    if offset + stop - start <= chunk_length:  # the usual case: one chunk holds the segment
        out[: stop - start] = get((*field, index))[offset : offset + stop - start]
        return
    position = start
    while position < stop:
        index, offset = divmod(position, chunk_length)
        end = min(stop, (index + 1) * chunk_length)
        out[position - start : end - start] = get((*field, index))[offset : offset + end - position]
        position = end
