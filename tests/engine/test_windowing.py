"""Windowing of tabular series: brute-force loops, Hypothesis, streaming == in-memory.

Every inputs mode with horizons H in {0, 1, 3} (H >= 1 for label inputs).
"""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segflow.engine.windowing as windowing_module
from segflow.engine.windowing import (
    WindowConfig,
    iter_windows,
    make_windows,
    min_rows,
    model_rows,
)
from segflow.errors import ConfigError

MODES = ["features", "labels", "features_and_labels"]
TARGETS = ["many_to_one", "many_to_many"]
SETTINGS = settings(deadline=None, max_examples=200)


def brute_force(features, labels, time_steps, inputs, horizon, target):
    """Explicit loops, one window-ending row at a time, straight from the definition."""
    table_rows = len(features)
    labs = [list(np.atleast_1d(labels[r])) for r in range(table_rows)]
    xs, ys = [], []
    for t in range(table_rows):
        rows = list(range(t - time_steps + 1, t + 1))  # the window ending at row t
        if rows[0] < 0 or t + horizon >= table_rows:
            continue
        window = []
        for r in rows:
            if inputs == "features":
                window.append(list(features[r]))
            elif inputs == "labels":
                window.append(labs[r])
            else:
                window.append(list(features[r]) + labs[r])
        xs.append(window)
        if target == "many_to_one":
            ys.append(labs[t + horizon])
        else:
            ys.append([labs[r + horizon] for r in rows])  # each position predicts H rows ahead
    return np.array(xs), np.array(ys)


def horizons(inputs):
    """Horizons valid for ``inputs``: label inputs need H >= 1."""
    return [0, 1, 3] if inputs == "features" else [1, 3]


CASES = [(inputs, h) for inputs in MODES for h in horizons(inputs)]


def table(rows, n_features, label_dims, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, n_features)).astype(np.float32)
    shape = (rows,) if label_dims is None else (rows, label_dims)
    labels = rng.integers(0, 5, size=shape).astype(np.float32)
    return features, labels


@pytest.mark.parametrize(("mode", "horizon"), CASES)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("time_steps", [1, 2, 3, 7])
@pytest.mark.parametrize("label_dims", [None, 1, 2])
def test_matches_brute_force(mode, horizon, target, time_steps, label_dims):
    features, labels = table(12, 3, label_dims)
    config = WindowConfig(time_steps=time_steps, inputs=mode, horizon=horizon, target=target)
    x, y = make_windows(features, labels, config)
    bx, by = brute_force(features, labels, time_steps, mode, horizon, target)
    np.testing.assert_array_equal(x, bx)
    np.testing.assert_array_equal(y, by)
    n = 12 - time_steps + 1 - horizon
    k = label_dims or 1
    width = {"features": 3, "labels": k, "features_and_labels": 3 + k}[mode]
    assert x.shape == (n, time_steps, width)
    assert y.shape == ((n, k) if target == "many_to_one" else (n, time_steps, k))
    assert x.flags.c_contiguous and y.flags.c_contiguous


@pytest.mark.parametrize(("mode", "horizon"), CASES)
def test_many_to_one_is_last_position_of_many_to_many(mode, horizon):
    features, labels = table(10, 2, None)
    one = WindowConfig(time_steps=3, inputs=mode, horizon=horizon)
    _, y1 = make_windows(features, labels, one)
    many = one.model_copy(update={"target": "many_to_many"})
    _, ym = make_windows(features, labels, many)
    np.testing.assert_array_equal(y1, ym[:, -1])


ROWS = [
    # (mode, H, time_steps, first window's X rows, first target row, number of windows), T=6
    ("features", 0, 1, [0], 0, 6),  # a window is just the current row
    ("features", 0, 3, [0, 1, 2], 2, 4),  # rows t-2..t predict t
    ("features", 2, 3, [0, 1, 2], 4, 2),  # rows t-2..t predict t+2
    ("labels", 1, 1, [0], 1, 5),  # previous label predicts the next (lag-1)
    ("labels", 1, 3, [0, 1, 2], 3, 3),  # the article's shift: rows u-3..u-1 predict u
    ("labels", 3, 2, [0, 1], 4, 2),  # two labels predict the one three rows later
    ("features_and_labels", 1, 2, [0, 1], 2, 4),  # rows u-2..u-1, never row u
    ("features", 0, 6, [0, 1, 2, 3, 4, 5], 5, 1),  # whole table, one window
    ("labels", 1, 5, [0, 1, 2, 3, 4], 5, 1),  # shifted: T = time_steps + 1 is the minimum
]


@pytest.mark.parametrize(("mode", "horizon", "time_steps", "x_rows", "first_target", "count"), ROWS)
def test_rows_used(mode, horizon, time_steps, x_rows, first_target, count):
    # Row r has feature 100 + r and label r, so values name the rows they came from.
    features = 100.0 + np.arange(6.0)[:, None]
    labels = np.arange(6.0)
    config = WindowConfig(time_steps=time_steps, inputs=mode, horizon=horizon)
    x, y = make_windows(features, labels, config)
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
    case=st.sampled_from([*CASES, ("features", 5), ("labels", 6)]),
    target=st.sampled_from(TARGETS),
    seed=st.integers(0, 2**16),
)
def test_random_tables(rows, n_features, label_dims, time_steps, case, target, seed):
    features, labels = table(rows, n_features, label_dims, seed)
    mode, horizon = case
    config = WindowConfig(time_steps=time_steps, inputs=mode, horizon=horizon, target=target)
    if rows < min_rows(config):
        with pytest.raises(ConfigError, match="time_steps"):
            make_windows(features, labels, config)
        return
    x, y = make_windows(features, labels, config)
    bx, by = brute_force(features, labels, time_steps, mode, horizon, target)
    np.testing.assert_array_equal(x, bx)
    np.testing.assert_array_equal(y, by)


@pytest.mark.parametrize(("mode", "horizon"), CASES)
def test_model_rows_window_to_make_windows(mode, horizon):
    # Windowing the input rows with H=0 over the shifted targets is the same windows: the
    # seam a streaming reader relies on (it sees rows and targets, never inputs or H).
    features, labels = table(15, 3, 2)
    config = WindowConfig(time_steps=4, inputs=mode, horizon=horizon)
    rows, targets = model_rows(features, labels, config)
    assert len(rows) == 15 and len(targets) == 15 - horizon
    x, y = make_windows(features, labels, config)
    n = len(targets) - 3
    expected = np.stack([rows[t - 3 : t + 1] for t in range(3, 3 + n)])
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, targets[3:])


def split(arrays, cuts):
    bounds = [0, *sorted(cuts), len(arrays[0])]
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in itertools.pairwise(bounds)]


@SETTINGS
@given(
    rows=st.integers(0, 40),
    label_dims=st.sampled_from([None, 2]),
    time_steps=st.integers(1, 6),
    case=st.sampled_from(CASES),
    target=st.sampled_from(TARGETS),
    data=st.data(),
)
def test_streaming_equals_in_memory(rows, label_dims, time_steps, case, target, data):
    features, labels = table(rows, 2, label_dims)
    mode, horizon = case
    config = WindowConfig(time_steps=time_steps, inputs=mode, horizon=horizon, target=target)
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

    config = WindowConfig(time_steps=3, inputs="labels", horizon=1)
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
        (
            np.zeros((3, 2)),
            np.zeros(3),
            WindowConfig(time_steps=3, inputs="labels", horizon=1),
            "least 4 rows",
        ),
        # a horizon adds the rows it looks ahead
        (np.zeros((5, 2)), np.zeros(5), WindowConfig(time_steps=3, horizon=3), "least 6 rows"),
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
        dict(time_steps=2, inputs="rows"),  # unknown inputs
        dict(time_steps=2, horizon=-1),  # negative horizon
        dict(time_steps=2, inputs="labels"),  # a label cannot predict itself (H=0)
        dict(time_steps=2, inputs="features_and_labels", horizon=0),  # nor with features
        dict(time_steps=2, mode="labels"),  # the old field name
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
