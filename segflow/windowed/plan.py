"""The epoch order of windowed training: which windows each batch holds, without any data.

A *window* is ``(sequence, t)``: input rows ``t-N+1 .. t`` of the sequence, target row ``t``
(see :mod:`segflow.engine.windowing`). Sequence ``i`` has windows for ``N-1 <= t < L_i``,
``L_i`` being its rows with a target.

Shuffling must keep reads chunk-sized and memory bounded, so it works on two levels:

1. the target rows of every sequence are cut into *blocks* of ``block_chunks`` whole chunks
   (aligned to the chunk grid), and an epoch visits the blocks in an order shuffled from
   ``(seed, epoch)``, forming one long *stream* of windows;
2. the stream is cut into *pools* of ``pool_batches * batch_size`` consecutive windows (the
   rows a pool needs are read together, once), and each pool's windows are shuffled from
   ``(seed, epoch, pool)``. Batches are consecutive runs of ``batch_size`` windows of a pool;
   only the epoch's last batch may be smaller.

Everything is a pure function of the plan's numbers, so batch ``k`` of epoch ``e`` is known
without reading anything: a run killed and resumed at batch ``k`` sees the same batches from
``k`` on. With ``shuffle=False`` (validation) blocks and windows keep their natural order.

>>> plan = plan_windows([10], [4], time_steps=3, batch_size=2, shuffle=False)
>>> plan.num_windows, plan.num_batches, [(b.start, b.stop) for b in plan.blocks]
(8, 4, [(2, 4), (4, 8), (8, 10)])
>>> plan.batch(epoch=0, index=1)
(array([0, 0]), array([4, 5]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segflow.errors import ConfigError
from storage.validation import invalid_argument, require_non_negative_int, require_positive_int

__all__ = ["Block", "Pool", "WindowPlan", "plan_windows"]


@dataclass(frozen=True)
class Block:
    """Consecutive target rows ``[start, stop)`` of one sequence: windows read together.

    Attributes:
        sequence: Index of the sequence.
        start: First window-ending row.
        stop: One past the last window-ending row.
    """

    sequence: int
    start: int
    stop: int

    @property
    def windows(self) -> int:
        """Windows of the block."""
        return self.stop - self.start


@dataclass(frozen=True)
class Pool:
    """The windows of one pool, in the order its batches take them.

    Attributes:
        index: The pool's index in the epoch.
        first_batch: Index in the epoch of the pool's first batch.
        block: Index (into :attr:`WindowPlan.blocks`) of each window's block.
        sequence: Each window's sequence.
        row: Each window's last row ``t`` (its target row).
    """

    index: int
    first_batch: int
    block: np.ndarray
    sequence: np.ndarray
    row: np.ndarray


@dataclass(frozen=True)
class WindowPlan:
    """Which windows make each batch of each epoch (build it with :func:`plan_windows`).

    Attributes:
        time_steps: Rows per window N.
        batch_size: Windows per batch.
        seed: Seed of the shuffles.
        shuffle: Whether epochs are shuffled (False: natural order, every epoch alike).
        pool_batches: Batches per pool.
        blocks: Every block, in natural order (sequence, then rows).
    """

    time_steps: int
    batch_size: int
    seed: int
    shuffle: bool
    pool_batches: int
    blocks: tuple[Block, ...]

    @property
    def num_windows(self) -> int:
        """Windows per epoch."""
        return sum(block.windows for block in self.blocks)

    @property
    def num_batches(self) -> int:
        """Batches per epoch (the last one may hold fewer than ``batch_size`` windows)."""
        return -(-self.num_windows // self.batch_size)

    @property
    def pool_windows(self) -> int:
        """Windows per pool (the epoch's last pool may hold fewer)."""
        return self.pool_batches * self.batch_size

    @property
    def num_pools(self) -> int:
        """Pools per epoch."""
        return -(-self.num_windows // self.pool_windows)

    def block_order(self, epoch: int) -> np.ndarray:
        """Indices of :attr:`blocks` in the order epoch ``epoch`` visits them."""
        count = len(self.blocks)
        if not self.shuffle:
            return np.arange(count)
        return np.random.default_rng((self.seed, epoch, 0)).permutation(count)

    def pool(self, epoch: int, index: int) -> Pool:
        """The windows of pool ``index`` of epoch ``epoch``, in batch order.

        Raises:
            ConfigError: If ``epoch`` is negative or ``index`` is not a pool of the epoch.
        """
        require_non_negative_int("epoch", epoch)
        if not 0 <= index < self.num_pools:
            raise invalid_argument("index", f"a pool index in [0, {self.num_pools})", index)
        order = self.block_order(epoch)
        sizes = np.array([self.blocks[i].windows for i in order], dtype=np.int64)
        ends = np.cumsum(sizes)
        lo = index * self.pool_windows
        positions = np.arange(lo, min(lo + self.pool_windows, self.num_windows), dtype=np.int64)
        slot = np.searchsorted(ends, positions, side="right")
        block = order[slot]
        starts = np.array([b.start for b in self.blocks], dtype=np.int64)
        sequences = np.array([b.sequence for b in self.blocks], dtype=np.int64)
        row = starts[block] + positions - (ends[slot] - sizes[slot])
        if self.shuffle:
            mix = np.random.default_rng((self.seed, epoch, 1, index)).permutation(len(positions))
            block, row = block[mix], row[mix]
        return Pool(index, index * self.pool_batches, block, sequences[block], row)

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(sequence, row)`` arrays of the windows of batch ``index`` of epoch ``epoch``.

        Raises:
            ConfigError: If ``index`` is not a batch of the epoch.
        """
        if not 0 <= index < self.num_batches:
            raise invalid_argument("index", f"a batch index in [0, {self.num_batches})", index)
        pool = self.pool(epoch, index // self.pool_batches)
        lo = (index % self.pool_batches) * self.batch_size
        part = slice(lo, lo + self.batch_size)
        return pool.sequence[part], pool.row[part]


def plan_windows(
    lengths: Sequence[int],
    chunk_lengths: Sequence[int],
    *,
    time_steps: int,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    pool_batches: int = 64,
    block_chunks: int = 1,
) -> WindowPlan:
    """Plan the epochs of windowed training over sequences of the given lengths.

    Args:
        lengths: Rows with a target, per sequence (windows end at ``N-1 <= t < length``).
        chunk_lengths: Rows per stored chunk, per sequence (blocks follow its chunk grid).
        time_steps: Rows per window N.
        batch_size: Windows per batch.
        seed: Seed of the shuffles.
        shuffle: Shuffle every epoch (False: natural order).
        pool_batches: Batches per pool (the windows shuffled together, read at once).
        block_chunks: Chunks per block (the unit the blocks are shuffled in).

    Returns:
        The plan.

    Raises:
        ConfigError: On a bad argument, or when no sequence is long enough for one window.

    >>> plan = plan_windows([6, 2], [4, 4], time_steps=2, batch_size=4)
    >>> plan.num_windows, sorted(plan.batch(0, 0)[1].tolist() + plan.batch(0, 1)[1].tolist())
    (6, [1, 1, 2, 3, 4, 5])
    """
    steps = require_positive_int("time_steps", time_steps)
    require_positive_int("batch_size", batch_size)
    require_positive_int("pool_batches", pool_batches)
    require_positive_int("block_chunks", block_chunks)
    if len(lengths) != len(chunk_lengths):
        raise invalid_argument("chunk_lengths", f"{len(lengths)} chunk lengths", chunk_lengths)
    blocks = []
    for i, (length, chunk) in enumerate(zip(lengths, chunk_lengths, strict=True)):
        size = require_positive_int("chunk_lengths", chunk) * block_chunks
        first = (steps - 1) // size
        for j in range(first, -(-length // size)):
            start, stop = max(j * size, steps - 1), min((j + 1) * size, length)
            if start < stop:
                blocks.append(Block(i, start, stop))
    if not blocks:
        raise ConfigError(
            f"Received an invalid value for argument `time_steps`, expected at most the rows "
            f"with a target of the longest sequence ({max(lengths, default=0)}) so that one "
            f"window exists, got {steps}."
        )
    return WindowPlan(steps, batch_size, seed, shuffle, pool_batches, tuple(blocks))
