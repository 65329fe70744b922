"""Windowed (stateless, ``time_steps``) training and prediction runs, end to end on a store.

The oracle of a prediction is the exported model called on each window cut by plain NumPy
(``sliding_window_view`` of the recipe's input rows); rows without a full window are NaN.

One training run serves the module (``trained``, read only): its report and export are checked,
it is the reference of the resumed run, and copies of its stores are predicted on.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from segflow.config import (
    CheckpointConfig,
    PredictParams,
    Recipe,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.engine.model import activate
from segflow.errors import ConfigError
from segflow.predicting import predict
from segflow.progress import StepEvent
from segflow.registry import load_exported, load_model
from segflow.training import TrainReport, train
from storage.local import LocalStore
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.durable.test_recipes import LENGTHS, _grow, realistic
from tests.engine.store_helpers import write_sequence

STEPS = 4
RECIPE = Recipe(inputs="features_and_labels", horizon=1, time_steps=STEPS, batch_size=8)


class Stop(Exception):
    """Raised from a progress callback to simulate a crash."""


def _world(tmp_path: Path) -> tuple[SequenceRepository, dict[str, Any]]:
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    data = {}
    for i, length in enumerate(LENGTHS):
        frames, labels = realistic(length + 12, i)
        labels[[3, 11]] = np.nan  # missing observations take no loss
        write_sequence(repo, f"s{i}", frames, chunk_length=5, labels=labels)
        record = {"uri": f"s{i}.npy", "fingerprint": f"s{i}", "start": 0, "stop": len(frames)}
        meta = repo.meta(f"s{i}")
        repo.write_meta(f"s{i}", meta.replace(fingerprint=f"s{i}", sources=(record,)))
        data[f"s{i}"] = (frames, labels)
    return repo, data


def _params(tmp_path: Path, **changes: Any) -> TrainParams:
    base: dict[str, Any] = {
        "store": StoreConfig(url=str(tmp_path / "data")),
        "checkpoints": CheckpointConfig(url=str(tmp_path / "ckpt"), every_steps=3),
        "epochs": 2,
        "model_tag": "win",
        "recipe": RECIPE,
        "learning_rate": 1e-2,
    }
    return TrainParams(**{**base, **changes})


def _predict_params(tmp_path: Path, **changes: Any) -> PredictParams:
    return PredictParams(
        store=StoreConfig(url=str(tmp_path / "data")),
        checkpoints=CheckpointConfig(url=str(tmp_path / "ckpt")),
        stream=StreamConfig(lanes=3, segment_length=5),  # ignored by a windowed model
        model_tag="win",
        **changes,
    )


def _oracle(tmp_path: Path, frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    config, _, model = _exported(tmp_path)
    x = _inputs(frames, labels)
    windows = np.moveaxis(sliding_window_view(x, STEPS, axis=0), -1, 1)
    out = np.full((len(x), config.outputs), np.nan, np.float32)
    logits = model({"frames": windows, "mask": np.ones(windows.shape[:2], bool)})
    out[STEPS - 1 :] = np.asarray(activate(config, logits))
    return out


def _inputs(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.concatenate([frames, labels[:, None]], axis=1).astype(np.float32)


def _exported(tmp_path: Path) -> tuple[Any, Any, Any]:
    from segflow.registry import load_exported_model

    return load_exported_model(LocalStore(tmp_path / "ckpt"), "win")


@dataclass(frozen=True)
class Trained:
    """Stores after an uninterrupted training run (``root``), its report and the data."""

    root: Path
    report: TrainReport
    data: dict[str, Any]

    def copy(self, tmp_path: Path) -> SequenceRepository:
        """Copy both stores under ``tmp_path``: the repository of the copy."""
        shutil.copytree(self.root, tmp_path, dirs_exist_ok=True)
        return SequenceRepository(LocalStore(tmp_path / "data"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One training run for the module; tests read it or work on a copy."""
    root = tmp_path_factory.mktemp("trained")
    _, data = _world(root)
    return Trained(root, train(_params(root)), data)


def test_windowed_model_trains_exports_and_predicts_with_nan_before_the_first_window(
    tmp_path: Path, trained: Trained
) -> None:
    repo, data, report = trained.copy(tmp_path), trained.data, trained.report
    assert report.epochs == 2 and all(np.isfinite(h["loss"]) for h in report.history)
    model = load_model(LocalStore(tmp_path / "ckpt"), "win")
    assert model.recipe == RECIPE and model.config.head == "many_to_one"
    predict(_predict_params(tmp_path))
    preds = PredictionRepository(repo.store)
    for sid, (frames, labels) in data.items():
        meta = preds.meta("win", sid)
        assert (meta.time_steps, meta.horizon, meta.head) == (STEPS, 1, "many_to_many")
        got = preds.read("win", sid)
        assert got.shape == (len(frames), 1)
        assert np.isnan(got[: STEPS - 1]).all()
        # Label inputs with NaN gaps give NaN windows: the model sees what is stored.
        np.testing.assert_allclose(got, _oracle(tmp_path, frames, labels), atol=1e-5)


def test_resumed_windowed_training_matches_uninterrupted_bitwise(
    tmp_path: Path, trained: Trained
) -> None:
    _world(tmp_path / "b")
    root, reference = trained.root, trained.report

    def stop(event: StepEvent) -> None:
        if event.step == 5:
            raise Stop

    with pytest.raises(Stop):
        train(_params(tmp_path / "b"), on_step=stop)
    resumed = train(_params(tmp_path / "b"))
    assert resumed.resumed_from is not None
    assert resumed.history == reference.history
    for a, b in zip(
        load_exported(LocalStore(root / "ckpt"), "win")[2],
        load_exported(LocalStore(tmp_path / "b" / "ckpt"), "win")[2],
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_grown_sequence_continues_like_a_recompute(tmp_path: Path, trained: Trained) -> None:
    repo = trained.copy(tmp_path)
    predict(_predict_params(tmp_path))
    frames, labels = realistic(9, 77)
    _grow(repo, "s2", frames, labels)
    report = predict(_predict_params(tmp_path))
    assert {s.id: s.action for s in report.sequences}["s2"] == "continue"
    preds = PredictionRepository(repo.store)
    continued = preds.read("win", "s2")
    predict(_predict_params(tmp_path, recompute=True))
    np.testing.assert_allclose(continued, preds.read("win", "s2"), atol=1e-6, equal_nan=True)


def test_windows_need_a_label_per_frame(tmp_path: Path) -> None:
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    frames, _ = realistic(12, 0)
    write_sequence(
        repo, "r", frames, chunk_length=4, labels=np.array([1]), label_kind="per_sequence"
    )
    with pytest.raises(ConfigError, match=r"time_steps=4"):
        train(_params(tmp_path, recipe=Recipe(time_steps=4)))
