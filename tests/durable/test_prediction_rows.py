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
            buffer = RowBuffer(array, 0, direct_store, use_pool)
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


class Recording:
    """Wraps a store, recording which chunk keys went through which kind of write."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.whole, self.in_place = inner, [], []  # type: ignore[var-annotated]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.whole.append(key.split("/c/")[1].split("/")[0])  # the time chunk
        self.inner.write_bytes(key, data)

    def write_chunk(self, key: str, parts: object) -> None:
        self.in_place.append(key.split("/c/")[1].split("/")[0])
        self.inner.write_chunk(key, parts)  # type: ignore[arg-type]


def test_chunks_holding_durable_rows_are_replaced_atomically(store: Store) -> None:
    # Chunks of 8 rows; a checkpoint's flush after 11 rows leaves chunk 1 holding 3 durable
    # rows. Only that chunk is merged and replaced whole; new chunks are written in place.
    preds = PredictionRepository(store)
    array = preds.create(TAG, "s", rows=30, meta=PredictionMeta(segment_length=8, outputs=2))
    rows = np.random.default_rng(3).normal(size=(30, 2)).astype(np.float32)
    recording = Recording(store)
    buffer = RowBuffer(array, 0, recording)  # type: ignore[arg-type]
    buffer.add(rows[:11])
    assert buffer.flush() == 11
    assert (recording.in_place, recording.whole) == (["0", "1"], [])
    # A crash now: what a resumed run finds is the durable rows, exact.
    np.testing.assert_array_equal(preds.outputs(TAG, "s")[:11], rows[:11])
    resumed = RowBuffer(preds.outputs(TAG, "s"), 11, recording)  # type: ignore[arg-type]
    resumed.add(rows[11:])
    assert resumed.flush() == 30
    assert recording.whole == ["1"] and recording.in_place == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(preds.outputs(TAG, "s")[:], rows)


def test_rows_follow_the_arrays_own_chunks(store: Store) -> None:
    # Outputs stored by an earlier version in chunks of 4 are continued in chunks of 4,
    # whatever chunk new predictions get.
    preds = PredictionRepository(store)
    array = preds.create(TAG, "old", rows=10, meta=PredictionMeta(segment_length=4, outputs=1))
    buffer = RowBuffer(array, 0, store)
    data = np.arange(10, dtype=np.float32)[:, None]
    buffer.add(data)
    assert buffer.flush() == 10 and buffer.chunk == 4
    np.testing.assert_array_equal(preds.outputs(TAG, "old")[:], data)
