"""Durable runs with the built-in GRU, SimpleRNN and ConvLSTM2D cells and a model of the user's
own (``examples/custom_model.py`` through ``model_factory``): a training run stopped and resumed
ends with the weights of an uninterrupted one, and the online continuation of a grown recording
equals a recompute (their states are saved with the predictions).

One uninterrupted training run per model serves the module: it is the reference of the resumed
run and, copied, the model whose predictions continue (the tests only read it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.predicting import predict
from segflow.progress import StepEvent
from segflow.registry import load_exported
from segflow.training import TrainReport, train
from storage.local import LocalStore
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.durable.test_recipes import _grow
from tests.engine.store_helpers import write_sequence

LENGTHS = (13, 7, 10, 16)
MODELS = {
    "gru": ModelConfig(frame_shape=(3,), cell="gru", lstm_units=[6, 4]),
    "simple_rnn": ModelConfig(frame_shape=(3,), cell="simple_rnn", lstm_units=[5]),
    "conv_lstm": ModelConfig(
        frame_shape=(6, 6), encoder="avgpool", pool_size=2, cell="conv_lstm", lstm_units=[3]
    ),
    "custom": ModelConfig(frame_shape=(6, 6), model_factory="examples.custom_model:build"),
}


class Stop(Exception):
    """Raised from a progress callback to simulate a crash."""


def _frames(config: ModelConfig, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(length, *config.frame_shape)).astype(np.float32)


def _world(root: Path, config: ModelConfig) -> SequenceRepository:
    repo = SequenceRepository(LocalStore(root / "data"))
    for i, length in enumerate(LENGTHS):
        frames = _frames(config, length, i)
        labels = np.cumsum(np.random.default_rng(10 + i).normal(size=length)).astype(np.float32)
        write_sequence(repo, f"s{i}", frames, chunk_length=4, labels=labels)
        record = {"uri": f"s{i}.npy", "fingerprint": f"s{i}", "start": 0, "stop": length}
        meta = repo.meta(f"s{i}")
        repo.write_meta(f"s{i}", meta.replace(fingerprint=f"s{i}", sources=(record,)))
    return repo


def _params(root: Path, config: ModelConfig) -> TrainParams:
    return TrainParams(
        store=StoreConfig(url=str(root / "data")),
        checkpoints=CheckpointConfig(url=str(root / "ckpt"), every_steps=2),
        stream=StreamConfig(lanes=2, segment_length=4),
        model=config,
        epochs=2,
        model_tag="cell",
        learning_rate=1e-2,
    )


@pytest.fixture(scope="module", params=sorted(MODELS))
def cell(request: pytest.FixtureRequest) -> str:
    """The model under test; a module-scoped parameter, so each trains once."""
    return str(request.param)


@pytest.fixture(scope="module")
def reference(
    cell: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, TrainReport]]:
    """An uninterrupted training run of the cell's model: its root and report (read only)."""
    root = tmp_path_factory.mktemp(f"reference-{cell}")
    config = MODELS[cell]
    _world(root, config)
    yield root, train(_params(root, config))


def test_stopped_and_resumed_training_matches_uninterrupted(
    tmp_path: Path, cell: str, reference: tuple[Path, TrainReport]
) -> None:
    config = MODELS[cell]
    _world(tmp_path / "b", config)
    root, report = reference

    def stop(event: StepEvent) -> None:
        if event.step == 5:
            raise Stop

    with pytest.raises(Stop):
        train(_params(tmp_path / "b", config), on_step=stop)
    resumed = train(_params(tmp_path / "b", config))
    assert resumed.resumed_from is not None and resumed.history == report.history
    want = load_exported(LocalStore(root / "ckpt"), "cell")[2]
    got = load_exported(LocalStore(tmp_path / "b" / "ckpt"), "cell")[2]
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


def _predict(root: Path, **changes: Any) -> Any:
    return predict(
        PredictParams(
            store=StoreConfig(url=str(root / "data")),
            checkpoints=CheckpointConfig(url=str(root / "ckpt"), every_steps=2),
            stream=StreamConfig(lanes=3, segment_length=5),
            model_tag="cell",
            **changes,
        )
    )


def test_continuing_a_grown_recording_equals_a_recompute(
    tmp_path: Path, cell: str, reference: tuple[Path, TrainReport]
) -> None:
    config = MODELS[cell]
    shutil.copytree(reference[0], tmp_path, dirs_exist_ok=True)
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    _predict(tmp_path)
    _grow(repo, "s1", _frames(config, 9, 99), np.arange(9, dtype=np.float32))
    report = _predict(tmp_path)
    assert {s.id: s.action for s in report.sequences}["s1"] == "continue"
    preds = PredictionRepository(repo.store)
    continued = preds.read("cell", "s1")
    _predict(tmp_path, recompute=True)
    np.testing.assert_allclose(continued, preds.read("cell", "s1"), atol=1e-5)
