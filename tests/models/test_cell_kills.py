"""``kill -9`` in the middle of training and of predicting, for every built-in cell (LSTM, GRU,
SimpleRNN, ConvLSTM2D) and for a model of the user's own (``examples/custom_model.py``): the
resumed training ends with the weights of an uninterrupted run, bit for bit, and the resumed
prediction writes the predictions of an uninterrupted one.

One child process for every model (tests/kill_harness.py, one TensorFlow import) runs each
model's prediction until it has done 3 steps (a checkpoint after each; the model exported with
its seeded initial weights, as predictions need no training), and its training until 5
(checkpoints every 2), and is killed once all have stopped. Meanwhile, on the other core, this
process runs the uninterrupted training and prediction of each model; the tests resume.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from segflow.checkpoint import CheckpointManager
from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.engine.engine import StreamingEngine
from segflow.predicting import predict
from segflow.registry import export_model, load_exported, predict_run_key, train_run_key
from segflow.training import train
from storage.local import LocalStore
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence
from tests.kill_harness import KillPlan, StoppedRun, kill_when_stopped, start_child

#: Variable lengths, none a multiple of the segment: lanes reset mid-step.
LENGTHS = (13, 7, 10, 16)
IDS = tuple(f"s{i}" for i in range(len(LENGTHS)))
MODELS = {
    "lstm": ModelConfig(frame_shape=(3,), cell="lstm", lstm_units=[4]),
    "gru": ModelConfig(frame_shape=(3,), cell="gru", lstm_units=[6, 4]),
    "simple_rnn": ModelConfig(frame_shape=(3,), cell="simple_rnn", lstm_units=[5]),
    "conv_lstm": ModelConfig(
        frame_shape=(8, 8, 1), encoder="avgpool", pool_size=2, cell="conv_lstm", lstm_units=[3]
    ),
    "custom": ModelConfig(frame_shape=(6, 6), model_factory="examples.custom_model:build"),
}
TRAIN_STOP = 5  # after the checkpoint of step 4: step 5 is redone on resume
PREDICT_STOP = 3


def _world(root: Path, config: ModelConfig) -> None:
    """Noisy frames and random-walk targets, one sequence per length."""
    repo = SequenceRepository(LocalStore(root / "data"))
    for i, length in enumerate(LENGTHS):
        rng = np.random.default_rng(i)
        frames = rng.normal(size=(length, *config.frame_shape)).astype(np.float32)
        labels = np.cumsum(rng.normal(size=length)).astype(np.float32)
        write_sequence(repo, IDS[i], frames, chunk_length=4, labels=labels)


def _train_params(root: Path, config: ModelConfig, every_steps: int = 2) -> TrainParams:
    return TrainParams(
        store=StoreConfig(url=str(root / "data")),
        checkpoints=CheckpointConfig(url=str(root / "ckpt"), every_steps=every_steps),
        stream=StreamConfig(lanes=2, segment_length=4),
        model=config,
        epochs=2,
        model_tag="cell",
        learning_rate=1e-2,
    )


def _predict_params(root: Path) -> PredictParams:
    return PredictParams(
        store=StoreConfig(url=str(root / "data")),
        checkpoints=CheckpointConfig(url=str(root / "ckpt"), every_steps=1),
        stream=StreamConfig(lanes=2, segment_length=4),
        model_tag="cell",
    )


@dataclass(frozen=True)
class Killed:
    """Where a model's runs are, under ``root``.

    ``reference``: the uninterrupted training run; ``trained``: the training run killed;
    ``whole``: the uninterrupted prediction run; ``predicted``: the prediction run killed.
    """

    root: Path


def _export_untrained(root: Path, config: ModelConfig) -> None:
    """Export the model with its seeded initial weights: predictions need no training."""
    engine = StreamingEngine(config, lanes=2, segment_length=4)
    export_model(LocalStore(root / "ckpt"), "cell", engine, config, meta={"checkpoint": "init"})


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Killed]:
    """Per model, the roots of its runs: the child is killed in the middle of every model's
    prediction and training while this process runs the uninterrupted ones."""
    runs, done = [], {}
    for cell, config in MODELS.items():
        root = tmp_path_factory.mktemp(f"kill-{cell}")
        _world(root / "trained", config)
        shutil.copytree(root / "trained", root / "reference")
        shutil.copytree(root / "trained", root / "predicted")
        _export_untrained(root / "predicted", config)
        shutil.copytree(root / "predicted", root / "whole")
        runs += [
            StoppedRun("predict", _predict_params(root / "predicted"), PREDICT_STOP),
            StoppedRun("train", _train_params(root / "trained", config), TRAIN_STOP),
        ]
        done[cell] = Killed(root)
    plan = KillPlan(tuple(runs), tmp_path_factory.mktemp("markers"))
    child = start_child(plan)
    try:
        for cell, config in MODELS.items():
            # Checkpoints only at the ends of epochs: how often they are written changes nothing.
            train(_train_params(done[cell].root / "reference", config, every_steps=1000))
            predict(_predict_params(done[cell].root / "whole"))
    finally:
        kill_when_stopped(child, plan)
    return done


@pytest.mark.parametrize("cell", sorted(MODELS))
def test_training_killed_then_resumed_matches_uninterrupted(
    killed: dict[str, Killed], cell: str
) -> None:
    root = killed[cell].root
    ckpt = LocalStore(root / "trained" / "ckpt")
    cursor = CheckpointManager(ckpt, train_run_key("cell")).read_cursor()
    assert cursor.epoch == 0 and 0 < cursor.step < TRAIN_STOP  # killed mid-epoch

    resumed = train(_train_params(root / "trained", MODELS[cell]))

    _, manifest, want = load_exported(LocalStore(root / "reference" / "ckpt"), "cell")
    assert resumed.resumed_from is not None and resumed.history == manifest["history"]
    got = load_exported(ckpt, "cell")[2]
    assert len(got) == len(want)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", sorted(MODELS))
def test_prediction_killed_then_resumed_matches_uninterrupted(
    killed: dict[str, Killed], cell: str
) -> None:
    root = killed[cell].root
    manager = CheckpointManager(LocalStore(root / "predicted" / "ckpt"), predict_run_key("cell"))
    assert manager.latest() is not None  # killed mid-run, after a checkpoint
    preds = PredictionRepository(LocalStore(root / "predicted" / "data"))
    assert not all(preds.exists("cell", i) and preds.meta("cell", i).complete for i in IDS)

    report = predict(_predict_params(root / "predicted"))

    assert report.resumed_from is not None
    want = PredictionRepository(LocalStore(root / "whole" / "data"))
    for sequence_id in IDS:
        assert preds.meta("cell", sequence_id).complete
        np.testing.assert_array_equal(
            preds.read("cell", sequence_id), want.read("cell", sequence_id)
        )
