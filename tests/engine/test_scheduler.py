"""Lane scheduler: brute-force oracle, invariants, table of examples, resume, errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segflow.engine.scheduler as scheduler_module
from segflow.engine.scheduler import (
    LaneSlot,
    Step,
    assignments,
    count_steps,
    masks,
    schedule,
)
from segflow.errors import ConfigError

SETTINGS = settings(deadline=None, max_examples=200)

lengths_st = st.lists(st.integers(0, 40), max_size=25)
lanes_st = st.integers(1, 6)
seglen_st = st.integers(1, 7)


def oracle(lengths: list[int], lanes: int, segment_length: int) -> list[list[tuple]]:
    """Frame-by-frame simulation, written without the scheduler's heap or arithmetic.

    Returns one entry per step: per lane, (sequence, frames carried, reset) with
    sequence None and no frames for an idle lane.
    """
    waiting = [i for i, n in enumerate(lengths) if n > 0]
    lane_seq: list[int | None] = [None] * lanes
    lane_pos = [0] * lanes
    steps = []
    while waiting or any(s is not None for s in lane_seq):
        row = []
        for lane in range(lanes):
            reset = False
            if lane_seq[lane] is None and waiting:
                lane_seq[lane], lane_pos[lane], reset = waiting.pop(0), 0, True
            seq = lane_seq[lane]
            frames = []
            for _ in range(segment_length):
                if seq is not None and lane_pos[lane] < lengths[seq]:
                    frames.append(lane_pos[lane])
                    lane_pos[lane] += 1
            row.append((seq, frames, reset))
        for lane in range(lanes):  # a finished lane takes a new sequence only next step
            if lane_seq[lane] is not None and lane_pos[lane] == lengths[lane_seq[lane]]:
                lane_seq[lane] = None
        steps.append(row)
    return steps


def as_rows(steps: list[Step]) -> list[list[tuple]]:
    """The scheduler's steps in the oracle's form (idle lanes' reset compared separately)."""
    return [
        [
            (s.sequence, list(range(s.start, s.stop)), s.reset if s.sequence is not None else False)
            for s in step.slots
        ]
        for step in steps
    ]


@SETTINGS
@given(lengths_st, lanes_st, seglen_st)
def test_matches_frame_by_frame_oracle(lengths, lanes, segment_length):
    steps = list(schedule(lengths, lanes, segment_length))
    assert as_rows(steps) == oracle(lengths, lanes, segment_length)
    assert count_steps(lengths, lanes, segment_length) == len(steps)


@SETTINGS
@given(lengths_st, lanes_st, seglen_st)
def test_invariants(lengths, lanes, segment_length):
    steps = list(schedule(lengths, lanes, segment_length))
    seen: dict[int, list[int]] = {}
    lane_of: dict[int, int] = {}
    finished_at: dict[int, int] = {}
    for k, step in enumerate(steps):
        assert step.index == k
        assert len(step.slots) == lanes
        for lane, slot in enumerate(step.slots):
            assert 0 <= slot.valid <= segment_length
            if slot.sequence is None:
                assert (slot.start, slot.stop, slot.reset, slot.ends) == (0, 0, True, False)
                continue
            seq = slot.sequence
            assert lane_of.setdefault(seq, lane) == lane  # never changes lanes
            frames = seen.setdefault(seq, [])
            assert slot.start == len(frames)  # in order, no gap, no repeat
            assert slot.reset == (slot.start == 0)
            assert slot.valid >= 1
            # padding only at the tail: a short slot must be the sequence's last one
            assert slot.valid == segment_length or slot.ends
            assert slot.ends == (slot.stop == lengths[seq])
            frames.extend(range(slot.start, slot.stop))
            if slot.ends:
                finished_at[seq] = k
        started = {s.sequence for s in step.slots if s.sequence is not None}
        waiting = [i for i, n in enumerate(lengths) if n > 0 and i not in seen and i not in started]
        idle = [s for s in step.slots if s.sequence is None]
        assert not (idle and waiting), "a lane idles while a sequence waits"
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    assert sorted(seen) == nonempty  # zero-length skipped, every other visited
    for seq in nonempty:
        assert seen[seq] == list(range(lengths[seq]))
    # sequences start in order
    firsts = [
        next(k for k, s in enumerate(steps) if any(x.sequence == seq for x in s.slots))
        for seq in nonempty
    ]
    assert firsts == sorted(firsts)
    # work conservation: no more steps than needed to run everything once lanes are full
    segs = sum(-(-n // segment_length) for n in lengths)
    assert len(steps) >= -(-segs // lanes)
    if steps:
        assert any(s.sequence is not None for s in steps[-1].slots)


@SETTINGS
@given(lengths_st, lanes_st, seglen_st, st.data())
def test_resume_equals_suffix(lengths, lanes, segment_length, data):
    full = list(schedule(lengths, lanes, segment_length))
    k = data.draw(st.integers(0, len(full)))
    assert list(schedule(lengths, lanes, segment_length, start_step=k)) == full[k:]


@SETTINGS
@given(lengths_st, lanes_st, seglen_st)
def test_masks_match_slots(lengths, lanes, segment_length):
    for step in schedule(lengths, lanes, segment_length):
        mask, reset = masks(step, segment_length)
        assert mask.shape == (lanes, segment_length) and mask.dtype == bool
        assert reset.shape == (lanes,) and reset.dtype == bool
        for lane, slot in enumerate(step.slots):
            expected = [j < slot.valid for j in range(segment_length)]
            assert mask[lane].tolist() == expected
            assert reset[lane] == slot.reset


def slots(step: Step) -> list[tuple]:
    return [(s.sequence, s.start, s.stop, s.reset) for s in step.slots]


IDLE = (None, 0, 0, True)

EXAMPLES = [
    # one lane, one sequence: three full segments then a padded one
    ([7], 1, 2, [[(0, 0, 2, True)], [(0, 2, 4, False)], [(0, 4, 6, False)], [(0, 6, 7, False)]]),
    # more lanes than sequences: extra lane idles from the start
    ([2], 2, 4, [[(0, 0, 2, True), IDLE]]),
    # zero-length sequences are skipped: 1 and 3 never appear, 2 takes lane 1 at step 0
    ([3, 0, 1, 0], 2, 2, [[(0, 0, 2, True), (2, 0, 1, True)], [(0, 2, 3, False), IDLE]]),
    # lane 1 frees after step 0, sequence 2 takes it at step 1 (not earlier)
    ([4, 1, 2], 2, 2, [[(0, 0, 2, True), (1, 0, 1, True)], [(0, 2, 4, False), (2, 0, 2, True)]]),
    # both lanes free at once: the next sequences go lowest lane first
    (
        [2, 2, 1, 3],
        2,
        2,
        [
            [(0, 0, 2, True), (1, 0, 2, True)],
            [(2, 0, 1, True), (3, 0, 2, True)],
            [IDLE, (3, 2, 3, False)],
        ],
    ),
    # exact multiple of segment_length: no padded step, the lane frees right after
    ([4, 1], 1, 2, [[(0, 0, 2, True)], [(0, 2, 4, False)], [(1, 0, 1, True)]]),
    # all sequences empty: no steps at all
    ([0, 0], 3, 5, []),
    # no sequences: no steps
    ([], 1, 1, []),
    # segment longer than every sequence: one step each, three lanes
    (
        [3, 1, 2, 5],
        3,
        8,
        [[(0, 0, 3, True), (1, 0, 1, True), (2, 0, 2, True)], [(3, 0, 5, True), IDLE, IDLE]],
    ),
]


@pytest.mark.parametrize(("lengths", "lanes", "segment_length", "expected"), EXAMPLES)
def test_examples(lengths, lanes, segment_length, expected):
    steps = list(schedule(lengths, lanes, segment_length))
    assert [slots(s) for s in steps] == expected
    assert count_steps(lengths, lanes, segment_length) == len(expected)


def test_ends_and_valid():
    steps = list(schedule([3], 1, 2))
    assert [(s.slots[0].valid, s.slots[0].ends) for s in steps] == [(2, False), (1, True)]


def test_ends_unknown_for_hand_built_slot():
    with pytest.raises(ConfigError, match="length"):
        _ = LaneSlot(0, 0, 2, True).ends


def test_assignments():
    plan = assignments([5, 2, 0, 3], 2, 2)
    got = [(a.sequence, a.lane, a.first_step, a.steps, a.last_step) for a in plan]
    # seq 0 runs steps 0-2 in lane 0; seq 1 step 0 lane 1; seq 3 follows in lane 1 at step 1
    assert got == [(0, 0, 0, 3, 2), (1, 1, 0, 1, 0), (3, 1, 1, 2, 2)]


def test_accepts_numpy_integers():
    lengths = np.array([3, 0, 2], dtype=np.int64)
    assert list(schedule(lengths, np.int32(2), np.int64(2))) == list(schedule([3, 0, 2], 2, 2))


def test_resume_deep_into_long_schedule():
    # ~10^6 steps: resuming near the end must not depend on replaying the prefix
    lengths = [1_000_000, 999_990, 5, 0, 3]  # lane 1 busy for 999_998 steps
    total = count_steps(lengths, 2, 1)
    assert total == 1_000_000
    tail = list(schedule(lengths, 2, 1, start_step=total - 2))
    assert [slots(s) for s in tail] == [
        [(0, 999_998, 999_999, False), IDLE],
        [(0, 999_999, 1_000_000, False), IDLE],
    ]
    assert tail[-1].slots[0].ends
    assert list(schedule(lengths, 2, 1, start_step=total)) == []


def test_deterministic():
    args = ([9, 3, 0, 4, 12, 1], 3, 4)
    assert list(schedule(*args)) == list(schedule(*args))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        (dict(lengths=[1], lanes=0, segment_length=1), "lanes"),  # no lanes
        (dict(lengths=[1], lanes=-2, segment_length=1), "lanes"),  # negative lanes
        (dict(lengths=[1], lanes=1, segment_length=0), "segment_length"),  # empty segments
        (dict(lengths=[1, -1], lanes=1, segment_length=1), r"lengths\[1\]"),  # negative length
        (dict(lengths=[1.5], lanes=1, segment_length=1), r"lengths\[0\]"),  # not an integer
        (dict(lengths=[1], lanes=True, segment_length=1), "lanes"),  # bool is not a count
        (dict(lengths=5, lanes=1, segment_length=1), "lengths"),  # not a sequence
        (dict(lengths=[2], lanes=1, segment_length=1, start_step=-1), "start_step"),  # negative
        (dict(lengths=[2], lanes=1, segment_length=1, start_step=3), "start_step"),  # past the end
    ],
)
def test_invalid_arguments(kwargs, argument):
    # raised at call time, before any iteration
    with pytest.raises(ConfigError, match=argument) as info:
        schedule(**kwargs)
    assert "expected" in str(info.value) and "got" in str(info.value)


def test_count_steps_validates():
    with pytest.raises(ConfigError, match="segment_length"):
        count_steps([1], 1, -3)


def test_masks_rejects_short_segment_length():
    step = next(schedule([4], 1, 4))
    with pytest.raises(ConfigError, match="segment_length"):
        masks(step, 2)


def test_public_names():
    assert set(scheduler_module.__all__) == {
        "Assignment",
        "LaneSlot",
        "Step",
        "assignments",
        "count_steps",
        "masks",
        "schedule",
    }


def test_doctests():
    result = doctest.testmod(scheduler_module)
    assert result.attempted > 0 and result.failed == 0
