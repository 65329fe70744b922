"""Prediction rows written chunk by chunk (DirectChunks, a pool) equal rows written by zarr.

Also: what the predictions repository writes without zarr's round trips (state, target
times, metadata) replaces what an earlier run left, on a local store and on S3.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from segflow.errors import KeyNotFoundError
from segflow.predicting.execute import RowBuffer
from storage.base import Store
from storage.predictions import PredictionMeta, PredictionRepository

TAG = "rows"


@pytest.fixture
def store(local_or_s3_store: Store) -> Store:
    return local_or_s3_store


def _pieces(rng: np.random.Generator, rows: int, outputs: int) -> list[np.ndarray]:
    """Noisy rows in pieces of variable length, as lanes hand them over."""
    data = rng.normal(size=(rows, outputs)).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, rows), size=min(6, rows - 1), replace=False))
    return np.split(data, cuts)


@pytest.mark.parametrize(
    ("rows", "chunk", "flush_after"),
    [
        (100, 16, None),  # an edge chunk of 4 rows at the end
        (96, 16, None),  # chunk-aligned length
        (75, 8, 2),  # a flush mid-chunk (a checkpoint): the next write starts unaligned
        (5, 32, None),  # shorter than one chunk
    ],
)
def test_direct_rows_equal_zarr_rows(
    store: Store, rows: int, chunk: int, flush_after: int | None
) -> None:
    preds = PredictionRepository(store)
    meta = PredictionMeta(segment_length=chunk, outputs=3)
    rng = np.random.default_rng(rows)
    pieces = _pieces(rng, rows, 3)
    results = []
    with ThreadPoolExecutor(3) as pool:
        for sequence, (direct_store, use_pool) in enumerate([(None, None), (store, pool)]):
            array = preds.create(TAG, f"s{sequence}", rows=rows, meta=meta)
            buffer = RowBuffer(array, 0, chunk, direct_store, use_pool)
            for index, piece in enumerate(pieces):
                buffer.add(piece)
                if index == flush_after:
                    buffer.flush()
            assert buffer.flush() == rows
            results.append(np.asarray(preds.outputs(TAG, f"s{sequence}")[:]))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[1], np.concatenate(pieces))


def test_recompute_replaces_state_and_target_times(store: Store) -> None:
    first = PredictionRepository(store)
    meta = PredictionMeta(segment_length=4, outputs=2, length=6)
    first.create(TAG, "seq", rows=6, meta=meta)
    first.write_target_times(TAG, "seq", np.linspace(0.5, 3.0, 6))
    first.finish(TAG, "seq", meta, {"old_0/h": np.ones(3), "lstm_0/h": np.full(3, 2.0)})
    # A later run (another repository object) recreates them: nothing of the first is left.
    second = PredictionRepository(store)
    second.create(TAG, "seq", rows=6, meta=meta)
    second.write_target_times(TAG, "seq", np.zeros(6))  # all fill value: no chunk written
    second.finish(TAG, "seq", meta, {"lstm_0/h": np.arange(3.0)})
    reader = PredictionRepository(store)
    assert reader.meta(TAG, "seq").complete
    state = reader.read_state(TAG, "seq")
    assert list(state) == ["lstm_0/h"]
    np.testing.assert_array_equal(state["lstm_0/h"], np.arange(3.0, dtype=np.float32))
    times = reader.target_times(TAG, "seq")
    assert times is not None
    np.testing.assert_array_equal(times, np.zeros(6))
    # Finishing again (a continued sequence) replaces the state it stored.
    reader.finish(TAG, "seq", meta.replace(length=6), {"lstm_0/c": np.ones(3)})
    assert list(reader.read_state(TAG, "seq")) == ["lstm_0/c"]


def test_meta_of_missing_predictions_is_refused(store: Store) -> None:
    preds = PredictionRepository(store)
    with pytest.raises(KeyNotFoundError, match="No predictions for sequence 'ghost'"):
        preds.write_meta(TAG, "ghost", PredictionMeta())
    with pytest.raises(KeyNotFoundError, match="No predictions for sequence 'ghost'"):
        preds.write_target_times(TAG, "ghost", np.zeros(2))
