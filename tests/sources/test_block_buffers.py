"""BlockBuffers: recycling block arrays never overwrites a block someone still holds."""

from __future__ import annotations

import weakref

import numpy as np

from segflow.sources._common import BlockBuffers
from segflow.sources.arrays import NpySource


def test_a_dropped_array_is_recycled():
    buffers = BlockBuffers()
    first = buffers.get((4, 3), np.uint8)
    first_ref = weakref.ref(first)  # a weak reference does not count as a holder
    del first
    second = buffers.get((4, 3), np.uint8)
    assert second is first_ref()


def test_held_arrays_are_never_handed_out_again():
    buffers = BlockBuffers()
    held = []
    for value in range(6):
        array = buffers.get((2, 2), np.int16)
        array[...] = value
        held.append(array)
    assert [int(a[0, 0]) for a in held] == list(range(6))
    assert len({id(a) for a in held}) == 6


def test_views_keep_their_base_from_being_recycled():
    buffers = BlockBuffers(keep=1)
    view = buffers.get((4,), np.float32)[:2]
    view[...] = 7
    buffers.get((4,), np.float32)[...] = 0
    np.testing.assert_array_equal(view, [7, 7])


def test_shape_or_dtype_changes_allocate(tmp_path):
    buffers = BlockBuffers()
    first = buffers.get((4,), np.float32)
    first_ref = weakref.ref(first)
    del first
    assert buffers.get((5,), np.float32) is not first_ref()
    assert buffers.get((4,), np.float64) is not first_ref()


def test_kept_and_dropped_blocks_read_the_same(tmp_path):
    data = np.random.default_rng(0).standard_normal((100, 7)).astype(np.float32)
    np.save(tmp_path / "a.npy", data)
    source = NpySource(str(tmp_path / "a.npy"))
    kept = list(source.blocks(8))
    sums = [float(block.frames.sum()) for block in source.blocks(8)]  # each block dropped
    np.testing.assert_array_equal(np.concatenate([b.frames for b in kept]), data)
    np.testing.assert_allclose(sums, [float(b.frames.sum()) for b in kept])
