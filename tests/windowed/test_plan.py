"""The epoch plan: every window once per epoch, seeded shuffles, resumable batches."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segflow.windowed.plan as plan_module
from segflow.errors import ConfigError
from segflow.windowed.plan import plan_windows


def windows_of(plan, epoch):
    """Every (sequence, row) of the epoch, batch by batch."""
    out = []
    for k in range(plan.num_batches):
        seqs, rows = plan.batch(epoch, k)
        assert len(seqs) == (plan.batch_size if k < plan.num_batches - 1 else len(seqs))
        out.extend(zip(seqs.tolist(), rows.tolist(), strict=True))
    return out


def expected_windows(lengths, time_steps):
    return {(i, t) for i, n in enumerate(lengths) for t in range(time_steps - 1, n)}


@settings(deadline=None, max_examples=60)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=1, max_size=4),
    chunks=st.integers(1, 9),
    time_steps=st.integers(1, 6),
    batch_size=st.integers(1, 7),
    pool_batches=st.integers(1, 4),
    block_chunks=st.integers(1, 3),
    shuffle=st.booleans(),
)
def test_every_window_once_per_epoch(
    lengths, chunks, time_steps, batch_size, pool_batches, block_chunks, shuffle
):
    expected = expected_windows(lengths, time_steps)
    if not expected:
        with pytest.raises(ConfigError, match="argument `time_steps`"):
            plan_windows(lengths, [chunks] * len(lengths), time_steps=time_steps, batch_size=1)
        return
    plan = plan_windows(
        lengths,
        [chunks] * len(lengths),
        time_steps=time_steps,
        batch_size=batch_size,
        shuffle=shuffle,
        pool_batches=pool_batches,
        block_chunks=block_chunks,
    )
    for epoch in (0, 3):
        got = windows_of(plan, epoch)
        assert len(got) == len(expected) == plan.num_windows
        assert set(got) == expected
    # blocks follow the chunk grid: whole chunks, cut at chunk boundaries
    for block in plan.blocks:
        size = chunks * block_chunks
        assert block.start // size == (block.stop - 1) // size


def test_epochs_differ_and_are_reproducible():
    args = dict(time_steps=4, batch_size=8, pool_batches=3, block_chunks=2)
    plan = plan_windows([300, 170, 95], [16, 16, 10], seed=7, **args)
    e0, e1 = windows_of(plan, 0), windows_of(plan, 1)
    assert e0 != e1 and sorted(e0) == sorted(e1)
    again = plan_windows([300, 170, 95], [16, 16, 10], seed=7, **args)
    assert windows_of(again, 1) == e1  # the same seed: the same order
    other = plan_windows([300, 170, 95], [16, 16, 10], seed=8, **args)
    assert windows_of(other, 1) != e1


def test_windows_of_a_pool_mix_blocks_and_stay_in_few():
    plan = plan_windows([4000], [50], time_steps=8, batch_size=32, pool_batches=10, block_chunks=2)
    pool = plan.pool(epoch=2, index=3)
    # 320 windows shuffled together, from a handful of 100-row blocks, not from everywhere
    assert len(pool.row) == 320
    assert 3 <= len(np.unique(pool.block)) <= 5
    assert not np.all(np.diff(pool.row) > 0)


def test_unshuffled_is_natural_order():
    plan = plan_windows([10, 7], [4, 4], time_steps=3, batch_size=4, shuffle=False)
    rows = windows_of(plan, 5)
    assert rows == [(0, t) for t in range(2, 10)] + [(1, t) for t in range(2, 7)]


def test_batch_k_needs_no_other_batch():
    plan = plan_windows([500], [16], time_steps=5, batch_size=6, pool_batches=4, seed=3)
    full = [plan.batch(2, k) for k in range(plan.num_batches)]
    fresh = plan_windows([500], [16], time_steps=5, batch_size=6, pool_batches=4, seed=3)
    for k in (0, 13, plan.num_batches - 1):
        for a, b in zip(fresh.batch(2, k), full[k], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(time_steps=0, batch_size=1), "argument `time_steps`"),
        (dict(time_steps=2, batch_size=0), "argument `batch_size`"),
        (dict(time_steps=2, batch_size=1, pool_batches=0), "argument `pool_batches`"),
        (dict(time_steps=2, batch_size=1, block_chunks=0), "argument `block_chunks`"),
        (dict(time_steps=11, batch_size=1), r"argument `time_steps`.*\(10\)"),  # no window
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        plan_windows([10, 4], [4, 4], **kwargs)


def test_batch_and_pool_indices_are_checked():
    plan = plan_windows([10], [4], time_steps=2, batch_size=4)
    with pytest.raises(ConfigError, match="argument `index`"):
        plan.batch(0, plan.num_batches)
    with pytest.raises(ConfigError, match="argument `epoch`"):
        plan.pool(-1, 0)


def test_doctests():
    result = doctest.testmod(plan_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
