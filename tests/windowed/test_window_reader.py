"""The window reader against the whole-table oracle (:func:`make_windows`), and its errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import segflow.windowed.reader as reader_module
from segflow.engine.chunks import ArrayChunks, SequenceChunks
from segflow.engine.windowing import WindowConfig, make_windows
from segflow.errors import ConfigError
from segflow.windowed.reader import WindowReader
from tests.windowed.data_helpers import RECIPE_MODES, CountingChunks, realistic_table, shaped

CASES = RECIPE_MODES
LENGTHS = (53, 8, 3, 41)  # not multiples of the chunk; one too short for N=4, one just long enough


def tables():
    return [realistic_table(n, 3, seed=i) for i, n in enumerate(LENGTHS)]


def oracle(data, config):
    """Every window of every sequence long enough, keyed by (sequence, first input row)."""
    out = {}
    for i, (features, labels) in enumerate(data):
        if len(features) < config.time_steps + config.horizon:
            continue
        x, y = make_windows(features, labels, config)
        for n in range(len(x)):
            out[(i, n)] = (x[n], y[n])
    return out


def read_all(reader, epoch, start_batch=0):
    batches = list(reader.iter_batches(epoch, start_batch))
    frames = np.concatenate([b["frames"] for b in batches])
    labels = np.concatenate([b["labels"] for b in batches])
    return batches, frames, labels


@pytest.mark.parametrize(("inputs", "horizon"), CASES)
@pytest.mark.parametrize("time_steps", [1, 4, 12])  # 12: a window's history spans 3 chunks
def test_windows_and_targets_equal_the_oracle(inputs, horizon, time_steps):
    config = WindowConfig(time_steps=time_steps, inputs=inputs, horizon=horizon)
    data = tables()
    sequences = [shaped(f, y, config, chunk=5, sid=f"s{i}") for i, (f, y) in enumerate(data)]
    reader = WindowReader(
        sequences, time_steps=time_steps, batch_size=7, seed=1, pool_bytes=200, block_chunks=1
    )
    expected = oracle(data, config)
    assert reader.num_windows == len(expected)
    batches, frames, labels = read_all(reader, epoch=2)
    assert all(b["frames"].dtype == np.float32 and b["mask"].all() for b in batches)
    assert all(len(b["frames"]) == 7 for b in batches[:-1])
    assert len(batches) == reader.num_batches and reader.plan.num_pools >= 3
    # Each window read is exactly one oracle window, and every oracle window is read once.
    lookup = {x.tobytes(): key for key, (x, _) in expected.items()}
    seen = set()
    for x, y in zip(frames, labels, strict=True):
        key = lookup[x.tobytes()]
        np.testing.assert_array_equal(y, expected[key][1][0])
        seen.add(key)
    assert seen == set(expected)


def test_epochs_are_shuffled_differently_and_reproducibly():
    data = tables()
    config = WindowConfig(time_steps=4)
    make = lambda seed: WindowReader(  # noqa: E731
        [shaped(f, y, config, 5) for f, y in data],
        time_steps=4,
        batch_size=8,
        seed=seed,
        pool_bytes=1000,
        block_chunks=1,
    )
    _, e0, _ = read_all(make(0), 0)
    _, e1, _ = read_all(make(0), 1)
    _, again, _ = read_all(make(0), 1)
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e1, again)


def test_unshuffled_reads_in_order():
    features, labels = realistic_table(30, 2, seed=3)
    config = WindowConfig(time_steps=4, horizon=2)
    reader = WindowReader(
        [shaped(features, labels, config, 4)], time_steps=4, batch_size=5, shuffle=False
    )
    _, frames, targets = read_all(reader, 0)
    x, y = make_windows(features, labels, config)
    np.testing.assert_array_equal(frames, x)
    np.testing.assert_array_equal(targets, y)  # (W, 1): model_rows keeps K explicit


@pytest.mark.parametrize("start_batch", [1, 6, 13])
def test_start_batch_is_the_suffix(start_batch):
    config = WindowConfig(time_steps=4, horizon=1)
    sequences = [shaped(f, y, config, 5) for f, y in tables()]
    reader = WindowReader(sequences, time_steps=4, batch_size=6, seed=4, pool_bytes=800)
    full, _, _ = read_all(reader, 3)
    suffix, _, _ = read_all(reader, 3, start_batch)
    assert len(suffix) == len(full) - start_batch
    for a, b in zip(full[start_batch:], suffix, strict=True):
        np.testing.assert_array_equal(a["frames"], b["frames"])
        np.testing.assert_array_equal(a["labels"], b["labels"])


@pytest.mark.parametrize("time_steps", [8, 40])  # history within one chunk; over 3 chunks
def test_reads_whole_chunks_once_per_pool(time_steps):
    features, labels = realistic_table(400, 4, seed=5)
    frames = CountingChunks(ArrayChunks(features, 16))
    targets = CountingChunks(ArrayChunks(labels, 16))
    seq = SequenceChunks("s", frames, targets)
    reader = WindowReader(
        [seq], time_steps=time_steps, batch_size=10, pool_bytes=20 * 10 * 20, block_chunks=2
    )
    read: set[int] = set()
    for index, rows in enumerate(reader.iter_pools(epoch=1)):
        # a pool's reads are done when it is yielded: each chunk it needs read once, whole
        assert max(frames.reads.values()) == 1 and max(targets.reads.values()) == 1
        read |= set(frames.reads)
        frames.reads.clear()
        targets.reads.clear()
        # it holds its windows' rows plus N-1 rows of history per block at most (neighbouring
        # blocks share theirs), not N rows a window
        blocks = len(np.unique(reader.plan.pool(1, index).block))
        assert len(rows.frames) <= len(rows.starts) + (time_steps - 1) * blocks
        assert len(rows.frames) < 2 * len(rows.starts) + time_steps
    assert reader.plan.num_pools >= 2 and read == set(range(25))


def test_images_and_uint8_rows():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, size=(30, 4, 5, 3), dtype=np.uint8)
    seq = SequenceChunks("v", ArrayChunks(video, 8), ArrayChunks(np.arange(30.0), 8))
    reader = WindowReader([seq], time_steps=3, batch_size=4, shuffle=False)
    batch = next(reader.iter_batches(0))
    assert batch["frames"].shape == (4, 3, 4, 5, 3) and batch["frames"].dtype == np.uint8
    np.testing.assert_array_equal(batch["frames"][1], video[1:4])
    assert batch["labels"].dtype == np.float32 and batch["labels"].tolist() == [2, 3, 4, 5]


def _seq(sid="a", rows=10, width=2, labels=True, per_sequence=False, dtype=np.float32):
    frames = ArrayChunks(np.zeros((rows, width), dtype), 4)
    label_rows = 1 if per_sequence else rows
    target = ArrayChunks(np.zeros(label_rows, np.float32), 4) if labels else None
    return SequenceChunks(sid, frames, target, per_sequence)


@pytest.mark.parametrize(
    ("sequences", "kwargs", "match"),
    [
        ([_seq()], dict(time_steps=0), "argument `time_steps`"),
        ([_seq()], dict(time_steps=2, batch_size=0), "argument `batch_size`"),
        ([], dict(time_steps=2), "argument `sequences`, expected at least one"),
        ([_seq(), _seq("b", width=3)], dict(time_steps=2), "'b' has row shape"),
        ([_seq(), _seq("b", dtype=np.uint8)], dict(time_steps=2), "'b' has dtype"),
        ([_seq(labels=False)], dict(time_steps=2), "'a' has no labels"),
        ([_seq(per_sequence=True)], dict(time_steps=2), "one label for the whole sequence"),
        ([_seq(rows=3), _seq("b", rows=4)], dict(time_steps=5), r"argument `time_steps`.*\(4\)"),
    ],
)
def test_errors(sequences, kwargs, match):
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        WindowReader(sequences, **kwargs)


def test_bad_position():
    reader = WindowReader([_seq()], time_steps=2, batch_size=2)
    with pytest.raises(ConfigError, match="argument `start_batch`"):
        next(reader.iter_batches(0, start_batch=reader.num_batches))
    with pytest.raises(ConfigError, match="argument `epoch`"):
        next(reader.iter_batches(-1))


def test_doctests():
    result = doctest.testmod(reader_module)
    assert result.attempted > 0 and result.failed == 0
