"""Each step's batch as gather indices into the rows of the chunks it reads: pure, vectorised.

The ``tf.data`` pipeline (:mod:`segflow.engine.dataset`) serves steps in *groups* of a few
consecutive steps. For a group, :func:`group_index` says which rows of which chunks the
group's steps read (:class:`RowSpans`: the rows Python concatenates, once per group) and, for
every step, lane and position, which of those rows lands there (int32 indices the graph
gathers by). It is computed with a handful of NumPy calls over the whole group, from the
schedule in array form (:class:`StepIndexPlan`), so no Python runs per lane or per step.

Index conventions, with ``R`` the rows of a field in the group:

- frames: row ``R`` is the padding row (zeros);
- labels: row ``R`` is the padding row (zeros), row ``R + 1`` is NaN: a real frame past the
  end of its sequence's labels (targets shifted by a horizon) has no target.

>>> plan = StepIndexPlan.of(_layout([5, 3], lanes=2, segment_length=3, chunk=4))
>>> group = group_index(plan, 0, 2)
>>> group.frames.keys, group.frames.spans.tolist()
([(0, 'frames', 0), (0, 'frames', 1), (1, 'frames', 0)], [[0, 4], [0, 1], [0, 3]])
>>> group.frame_index[:, 0].tolist()  # lane 0: sequence 0, frames 0-2 then 3-4 and padding
[[0, 1, 2], [3, 4, 8]]
>>> group.valid.tolist(), group.reset.tolist(), group.ends.tolist()
([[3, 3], [2, 0]], [[True, True], [False, True]], [[False, True], [True, False]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segflow.engine.readplan import FRAMES, LABELS, Chunking, ChunkKey, ReaderLayout
from segflow.engine.scheduler import assignments
from storage.validation import invalid_argument

__all__ = ["GroupIndex", "RowSpans", "StepGroup", "StepIndexPlan", "fill_group", "group_index"]


@dataclass(frozen=True, eq=False)
class StepIndexPlan:
    """A reader's schedule and chunking as arrays: what :func:`group_index` computes from.

    Attributes:
        lanes: Number of lanes B.
        segment_length: Frames per step L.
        num_steps: Steps of the schedule.
        with_labels: Whether labels are indexed too.
        lengths: (n,) frames per sequence.
        frames_chunk: (n,) rows per frames chunk of each sequence.
        frames_base: (n,) number of frames chunks of the sequences before each one: a
            sequence's chunk ``c`` is chunk ``frames_base[i] + c`` of the whole reader.
        labels_chunk: (n,) rows per labels chunk (1 where none).
        labels_base: (n,) as ``frames_base``, for labels.
        label_rows: (n,) rows with a target (``Chunking.label_rows``; 0 without labels).
        per_sequence: (n,) bool, one label row for the whole sequence.
        run_keys: (a,) sorted ``lane * (num_steps + 1) + first_step`` of each run of a
            sequence in a lane (the scheduler's assignments).
        run_sequence: (a,) the sequence of each run.
        run_first: (a,) its first step.
        run_last: (a,) its last step.
    """

    lanes: int
    segment_length: int
    num_steps: int
    with_labels: bool
    lengths: np.ndarray
    frames_chunk: np.ndarray
    frames_base: np.ndarray
    labels_chunk: np.ndarray
    labels_base: np.ndarray
    label_rows: np.ndarray
    per_sequence: np.ndarray
    run_keys: np.ndarray
    run_sequence: np.ndarray
    run_first: np.ndarray
    run_last: np.ndarray

    @classmethod
    def of(cls, layout: ReaderLayout) -> StepIndexPlan:
        """Return the plan of a reader's ``layout``."""
        chunking = layout.chunking
        lengths = np.array(layout.lengths, np.int64)
        frames_chunk = np.array([c.frames_chunk for c in chunking], np.int64)
        labels_chunk = np.array([c.labels_chunk or 1 for c in chunking], np.int64)
        per_sequence = np.array([c.per_sequence_labels for c in chunking], bool)
        label_rows = np.array(
            [_label_rows(c) if layout.with_labels else 0 for c in chunking], np.int64
        )
        runs = sorted(
            assignments(layout.lengths, layout.lanes, layout.segment_length),
            key=lambda a: (a.lane, a.first_step),
        )
        stride = layout.num_steps + 1
        return cls(
            lanes=layout.lanes,
            segment_length=layout.segment_length,
            num_steps=layout.num_steps,
            with_labels=layout.with_labels,
            lengths=lengths,
            frames_chunk=frames_chunk,
            frames_base=_bases(-(-lengths // frames_chunk)),
            labels_chunk=labels_chunk,
            labels_base=_bases(np.where(per_sequence, 1, -(-label_rows // labels_chunk))),
            label_rows=label_rows,
            per_sequence=per_sequence,
            run_keys=np.array([a.lane * stride + a.first_step for a in runs], np.int64),
            run_sequence=np.array([a.sequence for a in runs], np.int64),
            run_first=np.array([a.first_step for a in runs], np.int64),
            run_last=np.array([a.last_step for a in runs], np.int64),
        )


@dataclass(frozen=True, eq=False)
class RowSpans:
    """The rows of one field a group reads: ``chunk(keys[k])[spans[k, 0]:spans[k, 1]]``, in order.

    Attributes:
        keys: The chunks, each once, in the order their rows are concatenated.
        spans: (K, 2) int64: first and one-past-last row used of each chunk.
    """

    keys: list[ChunkKey]
    spans: np.ndarray

    @property
    def rows(self) -> int:
        """Rows of the concatenation (without the padding rows)."""
        return int((self.spans[:, 1] - self.spans[:, 0]).sum())


@dataclass(frozen=True, eq=False)
class GroupIndex:
    """Steps ``first_step .. first_step + steps - 1`` as indices into the rows they read.

    Attributes:
        first_step: The group's first step.
        frames: The frames rows to read.
        labels: The labels rows (None without labels).
        frame_index: (S, B, L) int32 row of each frame (``frames.rows``: padding).
        label_index: (S, B, L) int32 row of each label (see the module docstring); None
            without labels.
        valid: (S, B) int32 real frames per lane.
        reset: (S, B) bool, the slots' ``reset`` (True on idle lanes).
        ends: (S, B) bool, the slot carries its sequence's last frame.
    """

    first_step: int
    frames: RowSpans
    labels: RowSpans | None
    frame_index: np.ndarray
    label_index: np.ndarray | None
    valid: np.ndarray
    reset: np.ndarray
    ends: np.ndarray

    @property
    def steps(self) -> int:
        """Steps of the group."""
        return int(self.valid.shape[0])


@dataclass(frozen=True, eq=False)
class StepGroup:
    """A few consecutive steps as the rows they read and the indices that place those rows.

    Step ``k`` of the group (schedule step ``first_step + k``) is, in NumPy terms::

        frames = group.frames[group.frame_index[k]]          # (B, L, *frame_shape)
        labels = group.labels[group.label_index[k]]          # (B, L, *label_shape)
        mask = np.arange(L) < group.valid[k][:, None]        # (B, L)
        reset, ends = group.reset[k], group.ends[k]          # (B,)

    which is what the ``tf.data`` pipeline does in the graph (``tf.gather``).

    Attributes:
        first_step: The group's first step.
        frames: (C + 1, *frame_shape): first the frames rows the group reads, in order;
            the last row is zeros (padding). ``C`` is the rows a group can need at most,
            so that every group's arrays have one size and are recycled; rows between
            those read and the last are not used.
        labels: (C + 2, *label_shape) float32: the labels rows the group reads, then (the
            last two rows) zeros and NaN; None without labels.
        frame_index: (S, B, L) int32.
        label_index: (S, B, L) int32, or None.
        valid: (S, B) int32 real frames per lane.
        reset: (S, B) bool.
        ends: (S, B) bool.
    """

    first_step: int
    frames: np.ndarray
    labels: np.ndarray | None
    frame_index: np.ndarray
    label_index: np.ndarray | None
    valid: np.ndarray
    reset: np.ndarray
    ends: np.ndarray

    @property
    def steps(self) -> int:
        """Steps of the group."""
        return int(self.valid.shape[0])


def group_index(
    plan: StepIndexPlan, first_step: int, steps: int, *, pad_row: int | None = None
) -> GroupIndex:
    """Return the index of steps ``first_step .. first_step + steps - 1`` of ``plan``.

    Args:
        plan: The reader's plan.
        first_step: First step of the group.
        steps: Steps in the group (``>= 1``, not past the schedule's end).
        pad_row: Row index of the padding (labels: ``pad_row + 1`` is the NaN row); default
            each field's ``rows``, the row right after the group's. A fixed one (at least
            ``steps * lanes * segment_length``, what a group's rows never exceed) lets
            arrays of one size hold every group.

    Returns:
        The group's rows to read and gather indices.

    Raises:
        ConfigError: If the steps are not inside the schedule.
    """
    if first_step < 0 or steps < 1 or first_step + steps > plan.num_steps:
        raise invalid_argument(
            "steps", f"steps inside the schedule's {plan.num_steps}", (first_step, steps)
        )
    sequence, start, stop = _slots(plan, first_step, steps)
    positions = start[..., None] + np.arange(plan.segment_length)
    real = positions < stop[..., None]
    seq = np.maximum(sequence, 0)[..., None]  # idle lanes index sequence 0, masked out
    frames, frame_index = _field_index(
        FRAMES, positions, real, plan.frames_chunk[seq], plan.frames_base, seq, pad_row
    )
    labels = label_index = None
    if plan.with_labels:
        whole = plan.per_sequence[seq]
        known = real & (whole | (positions < plan.label_rows[seq]))
        rows = np.where(whole, 0, positions)
        labels, label_index = _field_index(
            LABELS, rows, known, plan.labels_chunk[seq], plan.labels_base, seq, pad_row
        )
        nan_row = (labels.rows if pad_row is None else pad_row) + 1
        label_index[real & ~known] = nan_row  # a frame without a target
    idle = sequence < 0
    return GroupIndex(
        first_step=first_step,
        frames=frames,
        labels=labels,
        frame_index=frame_index,
        label_index=label_index,
        valid=(stop - start).astype(np.int32),
        reset=idle | (start == 0),
        ends=~idle & (stop == plan.lengths[np.maximum(sequence, 0)]),
    )


def fill_group(
    index: GroupIndex, get: Callable[[ChunkKey], np.ndarray], rows: dict[str, np.ndarray]
) -> StepGroup:
    """Copy the rows ``index`` names into ``rows`` and return the group they make.

    Args:
        index: The group's index, computed with a fixed ``pad_row`` (``C``).
        get: Returns a chunk by key (read once, shared with other groups).
        rows: ``frames`` (C + 1, ...) and, with labels, ``labels`` (C + 2, ...) float32
            arrays nothing else holds (rows of earlier groups may still be in use by
            TensorFlow, which shares their memory).

    Returns:
        The group.
    """
    frames, labels = rows[FRAMES], rows.get(LABELS)
    _copy_spans(frames, index.frames, get)
    frames[-1] = 0  # the padding row
    if labels is not None:
        assert index.labels is not None
        _copy_spans(labels, index.labels, get)
        labels[-2] = 0
        labels[-1] = np.nan  # the row of a frame without a target
    return StepGroup(
        first_step=index.first_step,
        frames=frames,
        labels=labels,
        frame_index=index.frame_index,
        label_index=index.label_index,
        valid=index.valid,
        reset=index.reset,
        ends=index.ends,
    )


def _slots(plan: StepIndexPlan, first_step: int, steps: int) -> tuple[np.ndarray, ...]:
    """(S, B) sequence (-1 idle), start and stop of every lane of the group's steps."""
    step = np.arange(first_step, first_step + steps, dtype=np.int64)[:, None]
    lane = np.arange(plan.lanes, dtype=np.int64)[None, :]
    # The run of a lane at a step is the last one of that lane starting at or before it.
    run = np.searchsorted(plan.run_keys, lane * (plan.num_steps + 1) + step, side="right") - 1
    safe = np.maximum(run, 0)
    busy = (
        (run >= 0)
        & (plan.run_keys[safe] // (plan.num_steps + 1) == lane)
        & (step <= plan.run_last[safe])
    )
    sequence = np.where(busy, plan.run_sequence[safe], -1)
    start = np.where(busy, (step - plan.run_first[safe]) * plan.segment_length, 0)
    length = plan.lengths[np.maximum(sequence, 0)]
    stop = np.where(busy, np.minimum(start + plan.segment_length, length), 0)
    return sequence, start, stop


def _field_index(
    field: str,
    positions: np.ndarray,
    used: np.ndarray,
    chunk: np.ndarray,
    base: np.ndarray,
    seq: np.ndarray,
    pad_row: int | None,
) -> tuple[RowSpans, np.ndarray]:
    """The rows of ``field`` the ``used`` positions read, and each position's row in them."""
    index = positions // chunk
    chunk_id = (base[seq] + index)[used]
    within = (positions - index * chunk)[used]
    ids, inverse = np.unique(chunk_id, return_inverse=True)
    lo = np.full(len(ids), np.iinfo(np.int64).max)
    hi = np.zeros(len(ids), np.int64)
    np.minimum.at(lo, inverse, within)
    np.maximum.at(hi, inverse, within + 1)
    offsets = np.cumsum(hi - lo) - (hi - lo)
    pad = int((hi - lo).sum()) if pad_row is None else pad_row
    out = np.full(positions.shape, pad, np.int32)
    out[used] = offsets[inverse] + within - lo[inverse]
    owner = np.searchsorted(base, ids, side="right") - 1  # the last sequence starting there
    keys = [(int(i), field, int(c)) for i, c in zip(owner, ids - base[owner], strict=True)]
    return RowSpans(keys, np.stack([lo, hi], axis=1)), out


def _copy_spans(out: np.ndarray, spans: RowSpans, get: Callable[[ChunkKey], np.ndarray]) -> None:
    """Copy the rows ``spans`` names, in order, to the first rows of ``out``."""
    spans_ = zip(spans.keys, spans.spans.tolist(), strict=True)
    parts = [get(key)[lo:hi] for key, (lo, hi) in spans_]
    if parts:
        np.concatenate(parts, out=out[: spans.rows], casting="unsafe")


def _bases(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _label_rows(chunking: Chunking) -> int:
    return 1 if chunking.per_sequence_labels else chunking.label_rows


def _layout(lengths: list[int], *, lanes: int, segment_length: int, chunk: int) -> ReaderLayout:
    """A layout of float sequences of ``lengths`` (for the examples)."""
    from segflow.engine.scheduler import count_steps

    return ReaderLayout(
        ids=tuple(str(i) for i in range(len(lengths))),
        lengths=tuple(lengths),
        lanes=lanes,
        segment_length=segment_length,
        with_labels=False,
        num_steps=count_steps(lengths, lanes, segment_length),
        frame_shape=(),
        frame_dtype=np.dtype(np.float32),
        label_shape=None,
        chunking=tuple(Chunking(length=n, frames_chunk=chunk) for n in lengths),
    )
