"""Missing values in float sources: stored as NaN (the model feeds them as the feature's mean);
inf is refused and leaves the store untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segflow.config import SourceConfig, WriteConfig
from segflow.errors import SourceError
from segflow.ingest import ingest_source
from storage.local import LocalStore
from storage.sequences import SequenceRepository


def _repo(tmp_path: Path) -> SequenceRepository:
    return SequenceRepository(LocalStore(tmp_path / "data"))


def test_blank_csv_cells_are_stored_as_missing_values(tmp_path: Path) -> None:
    rows = ["date,pressure,rain_mm,rain"]
    rows += ["2020-01-01,,0.5,yes", "2020-01-02,1013.2,,no", "2020-01-03,1009.8,2.0,"]
    path = tmp_path / "station.csv"
    path.write_text("\n".join(rows) + "\n")
    repo = _repo(tmp_path)
    columns = SourceConfig(timestamp_column="date", label_column="rain")
    ingest_source(str(path), repo, sequence_id="station", source_config=columns)
    frames = repo.frames("station")[:]
    np.testing.assert_array_equal(np.isnan(frames), [[1, 0], [0, 1], [0, 0]])
    labels = repo.labels("station")
    assert labels is not None
    np.testing.assert_array_equal(labels[:], [1.0, 0.0, np.nan])


def test_nan_in_an_array_is_kept_and_inf_is_refused_without_touching_the_store(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    x[[3, 17], [0, 2]] = np.nan
    np.save(tmp_path / "r.npy", x)
    write = WriteConfig(segment_length=8)
    ingest_source(str(tmp_path / "r.npy"), repo, sequence_id="r", write_config=write)
    np.testing.assert_array_equal(repo.frames("r")[:], x)  # NaN where it was, bit for bit
    before = x.copy()
    x[30, 1] = np.inf
    np.save(tmp_path / "r.npy", x)
    with pytest.raises(SourceError, match="frame 30 contains inf values"):
        ingest_source(str(tmp_path / "r.npy"), repo, sequence_id="r", write_config=write)
    np.testing.assert_array_equal(repo.frames("r")[:], before)
