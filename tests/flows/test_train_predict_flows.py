"""Train and predict flows on a temporary Prefect server, and the CLI commands around them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.predict import predict
from flows.train import train
from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.predicting import PredictReport
from segflow.training import TrainReport
from segflow_cli.app import app
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence
from tests.prefect_harness import artifact_of_run

pytestmark = pytest.mark.usefixtures("prefect_server")
MODEL = ModelConfig(frame_shape=(3,), lstm_units=[8], task="binary")


@pytest.fixture()
def store(tmp_path: Path) -> str:
    repo = SequenceRepository(open_store(tmp_path / "store"))
    rng = np.random.default_rng(0)
    for i, length in enumerate((30, 41, 25)):
        frames = rng.normal(size=(length, 3)).astype("float32")
        labels = (frames[:, 0] > 0).astype("int8")
        write_sequence(repo, f"s{i}", frames, chunk_length=8, labels=labels, label_kind="per_frame")
    return str(tmp_path / "store")


def _train_params(store: str, tmp_path: Path) -> TrainParams:
    return TrainParams(
        store=StoreConfig(url=store),
        checkpoints=CheckpointConfig(url=str(tmp_path / "ckpt"), every_steps=3),
        model=MODEL,
        stream=StreamConfig(lanes=2, segment_length=8),
        epochs=2,
        model_tag="m1",
    )


def test_train_then_predict_flows(store: str, tmp_path: Path) -> None:
    state = train(_train_params(store, tmp_path), return_state=True)
    report = state.result()
    assert isinstance(report, TrainReport)
    assert report.epochs == 2 and len(report.history) == 2
    assert report.curves is not None and report.curves.endswith("models/m1/curves.png")
    curves = artifact_of_run("train-curves-m1", state.state_details.flow_run_id)
    assert curves is not None  # Prefect keeps a link as markdown: [text](link)
    assert f"({Path(report.curves).resolve().as_uri()})" in curves.data
    params = PredictParams(
        store=StoreConfig(url=store),
        checkpoints=CheckpointConfig(url=str(tmp_path / "ckpt")),
        model_tag="m1",
        stream=StreamConfig(lanes=3, segment_length=5),
    )
    first = predict(params)
    assert isinstance(first, PredictReport)
    assert first.predicted == 3 and first.frames == 96
    assert [row.id for row in sorted(first.sequences, key=lambda row: row.id)] == ["s0", "s1", "s2"]
    predictions = PredictionRepository(open_store(store))
    assert predictions.read("m1", "s1").shape == (41, 1)
    assert predictions.meta("m1", "s1").complete
    again = predict(params)
    assert again.skipped == 3 and again.frames == 0


def test_cli_train_and_predict(store: str, tmp_path: Path) -> None:
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"model": MODEL.model_dump(mode="json"), "epochs": 1}))
    runner = CliRunner()
    ckpt = str(tmp_path / "ckpt")
    result = runner.invoke(
        app,
        [
            "train",
            "--store",
            store,
            "--checkpoints",
            ckpt,
            "--config",
            str(config),
            "--lanes",
            "2",
            "--segment-length",
            "8",
            "--model-tag",
            "cli",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model_tag"] == "cli"
    result = runner.invoke(
        app,
        [
            "predict",
            "--store",
            store,
            "--checkpoints",
            ckpt,
            "--model-tag",
            "cli",
            "--segment-length",
            "4",
            "--lanes",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    predicted = json.loads(result.stdout)
    assert predicted["predicted"] == 3 and predicted["model_tag"] == "cli"
    assert {row["id"] for row in predicted["sequences"]} == {"s0", "s1", "s2"}
    result = runner.invoke(
        app,
        ["predict", "--store", store, "--checkpoints", ckpt, "--model-tag", "cli"],
    )
    assert result.exit_code == 0, result.output
    assert "predicted 0, continued 0, skipped 3, frames 0" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model-tag", "../evil"], "Invalid model tag"),
        (["--model-tag", "never-trained"], "never-trained"),
        (["--id", "nope"], "nope"),
    ],
)
def test_cli_predict_bad_input(store: str, tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        app, ["predict", "--store", store, "--checkpoints", str(tmp_path / "ckpt"), *args]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert not PredictionRepository(open_store(store)).tags()
