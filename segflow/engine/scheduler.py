"""Packing sequences of any length into a fixed number of lanes, one segment per step.

A stateful model runs ``lanes`` (B) sequences side by side, ``segment_length`` (L) frames at a
time. The schedule says, for every step, which frames of which sequence each lane carries:

- sequences are taken in the given order; at step 0 lane ``i`` takes the ``i``-th non-empty
  sequence;
- a sequence stays in its lane until it ends; at the *next* step the lane takes the next
  waiting sequence (several lanes freed at once take them in lane order, lowest lane first);
- a lane carries ``[start, min(start + L, length))`` and its short last segment is padded;
- zero-length sequences are never scheduled; lanes with nothing left to carry are idle.

The schedule is a pure function of its arguments, so a checkpoint only needs the step index:
``schedule(..., start_step=k)`` yields exactly the steps ``k, k+1, ...`` of the full schedule,
and finds the state at step ``k`` without walking the ``k`` earlier steps.

>>> for step in schedule([5, 2, 3], lanes=2, segment_length=2):
...     print(step.index, [(s.sequence, s.start, s.stop, s.reset) for s in step.slots])
0 [(0, 0, 2, True), (1, 0, 2, True)]
1 [(0, 2, 4, False), (2, 0, 2, True)]
2 [(0, 4, 5, False), (2, 2, 3, False)]
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from segflow.errors import ConfigError
from storage.validation import require_non_negative_int, require_positive_int

__all__ = ["Assignment", "LaneSlot", "Step", "assignments", "count_steps", "masks", "schedule"]


@dataclass(frozen=True)
class LaneSlot:
    """What one lane carries during one step.

    Attributes:
        sequence: Index into the ``lengths`` given to :func:`schedule`; ``None`` for an idle
            lane (all padding).
        start: First frame (inclusive) carried this step; 0 for an idle lane.
        stop: Last frame (exclusive); ``stop - start <= segment_length``; 0 for an idle lane.
        reset: True when the lane's state must be zeroed before the step: the slot begins its
            sequence (``start == 0``). Idle lanes also have ``reset=True``: they carry nothing,
            and zeroing them keeps a finished sequence's state from lingering in the lane.
        length: Total frames of the sequence (0 for an idle lane); ``None`` only for slots
            built by hand without it, for which :attr:`ends` cannot be answered.
    """

    sequence: int | None
    start: int
    stop: int
    reset: bool
    length: int | None = None

    @property
    def valid(self) -> int:
        """Number of real (unpadded) frames in the slot; 0 for an idle lane."""
        return self.stop - self.start

    @property
    def ends(self) -> bool:
        """True iff the slot carries the last frame of its sequence (False for idle lanes)."""
        if self.sequence is None:
            return False
        if self.length is None:
            raise ConfigError(
                f"LaneSlot for sequence {self.sequence} was built without `length`, "
                "so whether it ends its sequence is unknown; expected an int length, got None."
            )
        return self.stop == self.length


@dataclass(frozen=True)
class Step:
    """One step of the schedule: one slot per lane.

    Attributes:
        index: Position of the step in the full schedule (the resume cursor).
        slots: ``lanes`` slots, lane 0 first.
    """

    index: int
    slots: tuple[LaneSlot, ...]


@dataclass(frozen=True)
class Assignment:
    """Where and when one sequence runs.

    Attributes:
        sequence: Index into ``lengths``.
        lane: The lane that carries it from first to last frame.
        first_step: The step carrying its frame 0.
        steps: Number of steps it occupies (``ceil(length / segment_length)``).
    """

    sequence: int
    lane: int
    first_step: int
    steps: int

    @property
    def last_step(self) -> int:
        """The step carrying its last frame."""
        return self.first_step + self.steps - 1


_IDLE = LaneSlot(sequence=None, start=0, stop=0, reset=True, length=0)


def assignments(lengths: Sequence[int], lanes: int, segment_length: int) -> list[Assignment]:
    """Assign every non-empty sequence to a lane and a first step (sequence order).

    Args:
        lengths: Frames per sequence (``>= 0``).
        lanes: Number of lanes B (``> 0``).
        segment_length: Frames per step L (``> 0``).

    Returns:
        One :class:`Assignment` per non-empty sequence, in sequence order.

    Raises:
        ConfigError: On a non-positive ``lanes`` or ``segment_length`` or a negative length.

    >>> [(a.sequence, a.lane, a.first_step) for a in assignments([3, 0, 1, 1], 2, 2)]
    [(0, 0, 0), (2, 1, 0), (3, 1, 1)]
    """
    return _assign(_check(lengths, lanes, segment_length), lanes, segment_length)


def _assign(checked: list[int], lanes: int, segment_length: int) -> list[Assignment]:
    # Every lane is busy from step 0 until the queue empties, so each sequence goes to the
    # lane that frees first; ties go to the lowest lane, which the heap order gives.
    free = [(0, lane) for lane in range(lanes)]
    out = []
    for seq, length in enumerate(checked):
        if length == 0:
            continue
        step, lane = heapq.heappop(free)
        steps = -(-length // segment_length)
        out.append(Assignment(seq, lane, step, steps))
        heapq.heappush(free, (step + steps, lane))
    return out


def count_steps(lengths: Sequence[int], lanes: int, segment_length: int) -> int:
    """Number of steps the schedule takes (0 when every sequence is empty).

    >>> count_steps([5, 2, 3], lanes=2, segment_length=2)
    3
    """
    plan = assignments(lengths, lanes, segment_length)
    return max((a.first_step + a.steps for a in plan), default=0)


def schedule(
    lengths: Sequence[int], lanes: int, segment_length: int, *, start_step: int = 0
) -> Iterator[Step]:
    """Yield the steps of the lane schedule, from ``start_step`` to the end.

    Args:
        lengths: Frames per sequence, in the order the sequences are to be taken.
        lanes: Number of lanes B.
        segment_length: Frames per step L.
        start_step: First step to yield (a resume cursor); ``0 <= start_step <= count_steps``.

    Returns:
        An iterator of :class:`Step`, each with exactly ``lanes`` slots.

    Raises:
        ConfigError: Raised at call time (not on first ``next``) for invalid arguments.
    """
    checked = _check(lengths, lanes, segment_length)
    plan = _assign(checked, lanes, segment_length)
    total = max((a.first_step + a.steps for a in plan), default=0)
    start_step = _check_int("start_step", start_step, minimum=0)
    if start_step > total:
        raise ConfigError(
            f"Received an invalid value for argument `start_step`: expected at most {total} "
            f"(the number of steps of this schedule), got {start_step}."
        )
    return _iter_steps(plan, checked, lanes, segment_length, start_step, total)


def masks(step: Step, segment_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Padding mask and reset flags of one step.

    Args:
        step: A step of the schedule.
        segment_length: Frames per step L (the same as given to :func:`schedule`).

    Returns:
        ``mask`` (B, L) bool, True on real frames; ``reset`` (B,) bool, the slots' ``reset``.

    >>> mask, reset = masks(next(schedule([3, 1], 2, 2, start_step=1)), 2)
    >>> mask.tolist(), reset.tolist()
    ([[True, False], [False, False]], [False, True])
    """
    segment_length = _check_int("segment_length", segment_length, minimum=1)
    valid = np.fromiter((s.valid for s in step.slots), dtype=np.int64, count=len(step.slots))
    if valid.size and valid.max() > segment_length:
        raise ConfigError(
            f"Received an invalid value for argument `segment_length`: expected at least the "
            f"widest slot of step {step.index} ({valid.max()} frames), got {segment_length}."
        )
    mask = np.arange(segment_length) < valid[:, None]
    reset = np.fromiter((s.reset for s in step.slots), dtype=bool, count=len(step.slots))
    return mask, reset


def _iter_steps(
    plan: list[Assignment],
    lengths: list[int],
    lanes: int,
    segment_length: int,
    start_step: int,
    total: int,
) -> Iterator[Step]:
    per_lane: list[list[Assignment]] = [[] for _ in range(lanes)]
    for a in plan:
        per_lane[a.lane].append(a)
    # Lanes hold their sequences back to back from step 0, so a binary search on first steps
    # finds the one running at `start_step` without replaying the earlier steps.
    cursor = [
        max(bisect_right([a.first_step for a in queue], start_step) - 1, 0) for queue in per_lane
    ]
    for index in range(start_step, total):
        slots = []
        for lane, queue in enumerate(per_lane):
            if cursor[lane] < len(queue) and index > queue[cursor[lane]].last_step:
                cursor[lane] += 1
            current = queue[cursor[lane]] if cursor[lane] < len(queue) else None
            slots.append(_slot(current, index, lengths, segment_length))
        yield Step(index, tuple(slots))


def _slot(
    current: Assignment | None, index: int, lengths: list[int], segment_length: int
) -> LaneSlot:
    if current is None or index > current.last_step:
        return _IDLE
    length = lengths[current.sequence]
    start = (index - current.first_step) * segment_length
    stop = min(start + segment_length, length)
    return LaneSlot(current.sequence, start, stop, reset=start == 0, length=length)


def _check(lengths: Sequence[int], lanes: int, segment_length: int) -> list[int]:
    _check_int("lanes", lanes, minimum=1)
    _check_int("segment_length", segment_length, minimum=1)
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, Iterable):
        raise ConfigError(
            "Received an invalid value for argument `lengths`: expected a sequence of "
            f"non-negative integers, got {lengths!r} ({type(lengths).__name__})."
        )
    return [_check_int(f"lengths[{i}]", n, minimum=0) for i, n in enumerate(lengths)]


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if minimum == 1:
        return require_positive_int(name, value)
    return require_non_negative_int(name, value)
