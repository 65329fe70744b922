"""A prediction run killed with SIGKILL resumes from its checkpoint: same outputs, no gaps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.predicting import predict
from segflow.training import train
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

COUNT = 8
SCRIPT = """
import sys
from segflow.config import PredictParams
from segflow.predicting import predict
predict(PredictParams.model_validate_json(sys.argv[1]))
"""


def _store(path: Path) -> str:
    repo = SequenceRepository(open_store(path))
    rng = np.random.default_rng(3)
    for i in range(COUNT):
        frames = rng.normal(size=(60 + 11 * i, 3)).astype("float32")
        write_sequence(
            repo,
            f"s{i:02d}",
            frames,
            chunk_length=4,
            labels=(frames[:, 0] > 0).astype("int8"),
            label_kind="per_frame",
        )
    return str(path)


def _params(store: str, ckpt: str, every_steps: int) -> PredictParams:
    return PredictParams(
        store=StoreConfig(url=store),
        checkpoints=CheckpointConfig(url=ckpt, every_steps=every_steps),
        model_tag="m",
        stream=StreamConfig(lanes=2, segment_length=4),
    )


def test_sigkill_mid_prediction_then_resume(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "ckpt")
    reference_store, killed_store = _store(tmp_path / "a"), _store(tmp_path / "b")
    train(
        TrainParams(
            store=StoreConfig(url=reference_store),
            checkpoints=CheckpointConfig(url=ckpt),
            model=ModelConfig(frame_shape=(3,), lstm_units=[8], task="binary"),
            stream=StreamConfig(lanes=4, segment_length=8),
            epochs=1,
            model_tag="m",
        )
    )
    predict(_params(reference_store, ckpt, every_steps=1000))  # uninterrupted

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    params = _params(killed_store, ckpt, every_steps=1)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, params.model_dump_json()], env=env)
    checkpoints = Path(ckpt) / "runs" / "predict-m"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(checkpoints.glob("ckpt-*/manifest.json"))) < 2:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    predictions = PredictionRepository(open_store(killed_store))
    assert list(checkpoints.glob("ckpt-*/manifest.json")), "the kill must land mid-run"
    assert not all(
        predictions.find_meta("m", f"s{i:02d}") and predictions.meta("m", f"s{i:02d}").complete
        for i in range(COUNT)
    )

    report = predict(params)
    assert report.resumed_from is not None
    reference = PredictionRepository(open_store(reference_store))
    for i in range(COUNT):
        sid = f"s{i:02d}"
        assert predictions.meta("m", sid).complete
        np.testing.assert_array_equal(predictions.read("m", sid), reference.read("m", sid))
