"""Windowing of tabular series: brute-force loops, Hypothesis, streaming == in-memory."""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segflow.engine.windowing as windowing_module
from segflow.engine.windowing import WindowConfig, iter_windows, make_windows, min_rows
from segflow.errors import ConfigError

MODES = ["features", "labels", "features_and_labels"]
TARGETS = ["many_to_one", "many_to_many"]
SETTINGS = settings(deadline=None, max_examples=200)


def brute_force(features, labels, time_steps, mode, target):
    """Explicit loops, one target row at a time, straight from the recipe's definitions."""
    table_rows = len(features)
    labs = [list(np.atleast_1d(labels[r])) for r in range(table_rows)]
    xs, ys = [], []
    for t in range(table_rows):
        if mode == "features":
            rows = list(range(t - time_steps + 1, t + 1))  # up to and including t
        else:
            rows = list(range(t - time_steps, t))  # strictly before t
        if rows[0] < 0:
            continue
        window = []
        for r in rows:
            if mode == "features":
                window.append(list(features[r]))
            elif mode == "labels":
                window.append(labs[r])
            else:
                window.append(list(features[r]) + labs[r])
        xs.append(window)
        if target == "many_to_one":
            ys.append(labs[t])
        else:
            # each position predicts its own row (features) or the next row (shifted modes)
            ahead = 0 if mode == "features" else 1
            ys.append([labs[r + ahead] for r in rows])
    return np.array(xs), np.array(ys)


def table(rows, n_features, label_dims, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, n_features)).astype(np.float32)
    shape = (rows,) if label_dims is None else (rows, label_dims)
    labels = rng.integers(0, 5, size=shape).astype(np.float32)
    return features, labels


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("time_steps", [1, 2, 3, 7])
@pytest.mark.parametrize("label_dims", [None, 1, 2])
def test_matches_brute_force(mode, target, time_steps, label_dims):
    features, labels = table(12, 3, label_dims)
    config = WindowConfig(time_steps=time_steps, mode=mode, target=target)
    x, y = make_windows(features, labels, config)
    bx, by = brute_force(features, labels, time_steps, mode, target)
    np.testing.assert_array_equal(x, bx)
    np.testing.assert_array_equal(y, by)
    n = 12 - time_steps + (1 if mode == "features" else 0)
    k = label_dims or 1
    width = {"features": 3, "labels": k, "features_and_labels": 3 + k}[mode]
    assert x.shape == (n, time_steps, width)
    assert y.shape == ((n, k) if target == "many_to_one" else (n, time_steps, k))
    assert x.flags.c_contiguous and y.flags.c_contiguous


@pytest.mark.parametrize("mode", MODES)
def test_many_to_one_is_last_position_of_many_to_many(mode):
    features, labels = table(10, 2, None)
    _, y1 = make_windows(features, labels, WindowConfig(time_steps=3, mode=mode))
    many = WindowConfig(time_steps=3, mode=mode, target="many_to_many")
    _, ym = make_windows(features, labels, many)
    np.testing.assert_array_equal(y1, ym[:, -1])


ROWS = [
    # (mode, time_steps, first window's X rows, first target row, number of windows) for T=6
    ("features", 1, [0], 0, 6),  # a window is just the current row
    ("features", 3, [0, 1, 2], 2, 4),  # rows t-2..t predict t
    ("labels", 1, [0], 1, 5),  # previous label predicts the next (lag-1)
    ("labels", 3, [0, 1, 2], 3, 3),  # rows t-3..t-1
    ("features_and_labels", 2, [0, 1], 2, 4),  # rows t-2..t-1, never row t
    ("features", 6, [0, 1, 2, 3, 4, 5], 5, 1),  # whole table, one window
    ("labels", 5, [0, 1, 2, 3, 4], 5, 1),  # shifted: T = time_steps + 1 is the minimum
]


@pytest.mark.parametrize(("mode", "time_steps", "x_rows", "first_target", "count"), ROWS)
def test_rows_used(mode, time_steps, x_rows, first_target, count):
    # Row r has feature 100 + r and label r, so values name the rows they came from.
    features = 100.0 + np.arange(6.0)[:, None]
    labels = np.arange(6.0)
    x, y = make_windows(features, labels, WindowConfig(time_steps=time_steps, mode=mode))
    assert len(x) == count
    source = x[0, :, 0] - (100 if mode != "labels" else 0)
    assert source.tolist() == x_rows
    assert y[0].tolist() == [first_target]


@SETTINGS
@given(
    rows=st.integers(1, 30),
    n_features=st.integers(1, 4),
    label_dims=st.sampled_from([None, 1, 3]),
    time_steps=st.integers(1, 8),
    mode=st.sampled_from(MODES),
    target=st.sampled_from(TARGETS),
    seed=st.integers(0, 2**16),
)
def test_random_tables(rows, n_features, label_dims, time_steps, mode, target, seed):
    features, labels = table(rows, n_features, label_dims, seed)
    config = WindowConfig(time_steps=time_steps, mode=mode, target=target)
    if rows < min_rows(config):
        with pytest.raises(ConfigError, match="time_steps"):
            make_windows(features, labels, config)
        return
    x, y = make_windows(features, labels, config)
    bx, by = brute_force(features, labels, time_steps, mode, target)
    np.testing.assert_array_equal(x, bx)
    np.testing.assert_array_equal(y, by)


def split(arrays, cuts):
    bounds = [0, *sorted(cuts), len(arrays[0])]
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in itertools.pairwise(bounds)]


@SETTINGS
@given(
    rows=st.integers(0, 40),
    label_dims=st.sampled_from([None, 2]),
    time_steps=st.integers(1, 6),
    mode=st.sampled_from(MODES),
    target=st.sampled_from(TARGETS),
    data=st.data(),
)
def test_streaming_equals_in_memory(rows, label_dims, time_steps, mode, target, data):
    features, labels = table(rows, 2, label_dims)
    config = WindowConfig(time_steps=time_steps, mode=mode, target=target)
    # cuts may repeat (empty blocks) and fall at either end
    cuts = data.draw(st.lists(st.integers(0, rows), max_size=8))
    blocks = split((features, labels), cuts)
    if rows < min_rows(config):
        with pytest.raises(ConfigError, match="time_steps"):
            list(iter_windows(blocks, config))
        return
    parts = list(iter_windows(blocks, config))
    x, y = make_windows(features, labels, config)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)


def test_streaming_is_lazy_and_bounded():
    # an endless generator of blocks: windows come out block by block
    def blocks():
        for i in itertools.count():
            start = 4 * i
            yield np.arange(start, start + 4, dtype=float)[:, None], np.arange(start, start + 4)

    config = WindowConfig(time_steps=3, mode="labels")
    stream = iter_windows(blocks(), config)
    x0, y0 = next(stream)  # first block: rows 0-3 -> one window, target row 3
    assert x0[:, :, 0].tolist() == [[0, 1, 2]] and y0.tolist() == [[3]]
    x1, y1 = next(stream)  # second block: targets 4..7, windows reach back into block 0
    assert x1[:, :, 0].tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]
    assert y1[:, 0].tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize(
    ("features", "labels", "config", "match"),
    [
        # more time steps than rows: the message names time_steps and T
        (np.zeros((3, 2)), np.zeros(3), WindowConfig(time_steps=4), r"time_steps.*T=3"),
        # shifted mode needs one row more than time_steps
        (np.zeros((3, 2)), np.zeros(3), WindowConfig(time_steps=3, mode="labels"), "least 4 rows"),
        # mismatched lengths
        (np.zeros((5, 2)), np.zeros(4), WindowConfig(time_steps=2), "5 feature rows and 4 label"),
        # 1-D features
        (np.zeros(5), np.zeros(5), WindowConfig(time_steps=2), "features"),
        # 3-D labels
        (np.zeros((5, 2)), np.zeros((5, 1, 1)), WindowConfig(time_steps=2), "labels"),
    ],
)
def test_errors(features, labels, config, match):
    with pytest.raises(ConfigError, match=match):
        make_windows(features, labels, config)


def test_streaming_rejects_changed_width():
    blocks = [(np.zeros((4, 2)), np.zeros(4)), (np.zeros((4, 3)), np.zeros(4))]
    with pytest.raises(ConfigError, match=r"blocks\[1\] `features`"):
        list(iter_windows(blocks, WindowConfig(time_steps=2)))


def test_streaming_rejects_mismatched_block():
    blocks = [(np.zeros((4, 2)), np.zeros(3))]
    with pytest.raises(ConfigError, match=r"blocks\[0\]"):
        list(iter_windows(blocks, WindowConfig(time_steps=2)))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(time_steps=0),  # not positive
        dict(time_steps=2, mode="rows"),  # unknown mode
        dict(time_steps=2, target="one_to_many"),  # unknown target
        dict(time_steps=2, stride=1),  # unknown field
    ],
)
def test_config_rejects(kwargs):
    with pytest.raises(pydantic.ValidationError):
        WindowConfig(**kwargs)


def test_config_frozen():
    config = WindowConfig(time_steps=2)
    with pytest.raises(pydantic.ValidationError):
        config.time_steps = 3


def test_doctests():
    result = doctest.testmod(windowing_module)
    assert result.attempted > 0 and result.failed == 0
