"""The store is readable without segflow: every group opens with ``xarray.open_zarr``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from storage.local import LocalStore
from storage.predictions import PredictionMeta, PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

xr = pytest.importorskip("xarray")


@pytest.mark.parametrize(
    ("labels", "kind", "sizes"),
    [
        (np.array([2]), "per_sequence", {"time": 10, "feature": 3, "sequence": 1}),
        (np.arange(10), "per_frame", {"time": 10, "feature": 3}),
    ],
)
def test_sequences_open_with_either_kind_of_labels(
    tmp_path: Path, labels: np.ndarray, kind: str, sizes: dict[str, int]
) -> None:
    repo = SequenceRepository(LocalStore(tmp_path))
    frames = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    write_sequence(repo, "a", frames, chunk_length=4, labels=labels, label_kind=kind)  # type: ignore[arg-type]
    ds = xr.open_zarr(tmp_path / "sequences" / "a", consolidated=False)
    assert dict(ds.sizes) == sizes
    np.testing.assert_array_equal(ds["frames"].values, frames)


@pytest.mark.parametrize(("head", "rows"), [("many_to_many", 10), ("many_to_one", 1)])
def test_predictions_open_with_every_head(tmp_path: Path, head: str, rows: int) -> None:
    preds = PredictionRepository(LocalStore(tmp_path))
    meta = PredictionMeta(head=head, outputs=2, length=rows, horizon=2)  # type: ignore[arg-type]
    preds.create("m", "a", rows=rows, meta=meta)[:] = np.ones((rows, 2))
    if head == "many_to_many":
        preds.write_target_times("m", "a", np.arange(rows, dtype=np.float64) + 2)
    preds.finish("m", "a", meta, {"lstm_0/h": np.zeros(4), "conv_lstm_0/h": np.zeros((2, 2, 3))})
    ds = xr.open_zarr(tmp_path / "predictions" / "m" / "a", consolidated=False)
    assert ds["outputs"].shape == (rows, 2)
    if head == "many_to_many":  # the frame-time each row forecasts, aligned on "time"
        np.testing.assert_array_equal(ds["target_times"].values, np.arange(rows) + 2.0)
