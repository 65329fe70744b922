"""Row predictions of a windowed model against a brute-force loop over every window."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from segflow.engine.chunks import ArrayChunks, SequenceChunks
from segflow.engine.model import ModelConfig
from segflow.errors import ConfigError
from segflow.windowed import WindowEngine, window_predictions
from tests.windowed.data_helpers import realistic_table

STEPS = 5


@pytest.fixture(scope="module")
def engine():
    config = ModelConfig(frame_shape=(3,), lstm_units=[8], head="many_to_one", outputs=2)
    return WindowEngine(config, time_steps=STEPS, batch_size=16, seed=4)


@pytest.fixture(scope="module")
def series():
    features, _ = realistic_table(77, 3, seed=8)
    return features / np.abs(features).max(axis=0)  # the model's inputs, normalised


def brute_force(engine, x):
    out = np.full((len(x), 2), np.nan, np.float32)
    for t in range(STEPS - 1, len(x)):
        out[t] = engine.predict_windows(x[None, t - STEPS + 1 : t + 1])[0]
    return out


def collect(blocks):
    blocks = list(blocks)
    for (lo, rows), nxt in itertools.pairwise(blocks):
        assert nxt[0] == lo + len(rows)  # in order, no gap
    return blocks[0][0], np.concatenate([rows for _, rows in blocks]), blocks


@pytest.mark.parametrize(("batch_size", "block_rows"), [(None, None), (3, 7), (64, 1)])
def test_equal_brute_force_and_nan_without_a_window(engine, series, batch_size, block_rows):
    seq = SequenceChunks("s", ArrayChunks(series, 6))
    first, rows, blocks = collect(
        window_predictions(engine, seq, batch_size=batch_size, block_rows=block_rows)
    )
    assert first == 0 and rows.shape == (77, 2) and rows.dtype == np.float32
    assert np.isnan(rows[: STEPS - 1]).all() and not np.isnan(rows[STEPS - 1 :]).any()
    np.testing.assert_allclose(rows, brute_force(engine, series), atol=1e-5)
    assert all(lo % 6 == 0 for lo, _ in blocks)  # blocks follow the chunk grid


@pytest.mark.parametrize("start", [0, 2, 4, 30, 76, 77])
def test_start_gives_the_suffix(engine, series, start):
    seq = SequenceChunks("s", ArrayChunks(series, 6))
    blocks = list(window_predictions(engine, seq, start=start, block_rows=12))
    if start == 77:
        assert blocks == []
        return
    first, rows, _ = collect(blocks)
    assert first == start
    np.testing.assert_allclose(rows, brute_force(engine, series)[start:], atol=1e-5)


def test_bad_arguments(engine, series):
    seq = SequenceChunks("s", ArrayChunks(series, 6))
    with pytest.raises(ConfigError, match="argument `start`"):
        next(window_predictions(engine, seq, start=78))
    with pytest.raises(ConfigError, match="argument `block_rows`"):
        next(window_predictions(engine, seq, block_rows=0))
