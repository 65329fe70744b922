"""The evaluate flow and command end to end: a tiny exported model predicts a tiny store,
then the predictions are scored through the CLI (on a temporary Prefect server)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from flows.evaluate import evaluate as evaluate_flow
from segflow.config import (
    CheckpointConfig,
    EvaluateParams,
    ModelConfig,
    PredictParams,
    StoreConfig,
)
from segflow.engine.engine import StreamingEngine
from segflow.evaluation import EvaluationReport
from segflow.predicting import predict
from segflow.registry import export_model
from segflow_cli.evaluate import evaluate as evaluate_command
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

TAG = "tiny"
CONFIG = ModelConfig(frame_shape=(3,), lstm_units=[4], task="binary")


@pytest.fixture
def world(tmp_path: Path) -> tuple[str, str]:
    """A store of three labelled sequences predicted by a seeded, exported tiny model."""
    data, ckpt = str(tmp_path / "data"), str(tmp_path / "ckpt")
    repo = SequenceRepository(LocalStore(data))
    rng = np.random.default_rng(0)
    for i, length in enumerate((12, 9, 7)):
        frames = rng.normal(size=(length, 3)).astype(np.float32)
        labels = (frames[:, 0] > 0).astype(np.int8)
        write_sequence(repo, f"seq-{i}", frames, chunk_length=4, labels=labels)
    engine = StreamingEngine(CONFIG, lanes=1, segment_length=1)
    weights = [rng.normal(0, 0.6, w.shape).astype(np.float32) for w in engine.model.get_weights()]
    engine.model.set_weights(weights)
    export_model(LocalStore(ckpt), TAG, engine, CONFIG, meta={"checkpoint": "ckpt-0"})
    predict(
        PredictParams(
            store=StoreConfig(url=data),
            checkpoints=CheckpointConfig(url=ckpt),
            model_tag=TAG,
        ),
        run_id="test",
    )
    return data, ckpt


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(evaluate_command)
    app.command("noop")(lambda: None)  # two commands: the command's name is required
    return app


# Keep this test first: Prefect sets its logging up at the first flow run, and a first run
# inside CliRunner's swapped streams leaves pytest's captured stderr closed afterwards.
def test_flow_returns_the_typed_report(prefect_server: None, world: tuple[str, str]) -> None:
    data, ckpt = world
    params = EvaluateParams(store=StoreConfig(url=data), model_tag=TAG)
    report = evaluate_flow(params, CheckpointConfig(url=ckpt))
    assert isinstance(report, EvaluationReport)
    assert (report.task, report.task_source, report.counts.scored) == ("binary", "model config", 28)


def test_cli_evaluate_runs_the_flow(
    prefect_server: None, world: tuple[str, str], tmp_path: Path
) -> None:
    data, ckpt = world
    plots = tmp_path / "plots"
    args = ["evaluate", "--store", data, "--model-tag", TAG, "--checkpoints", ckpt]
    args += ["--pattern", "seq-[01]", "--plots-dir", str(plots), "--plot-sequence", "seq-1"]
    result = CliRunner().invoke(_app(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = EvaluationReport.from_json(json.loads(result.stdout))
    assert (report.task, report.task_source) == ("binary", "model config")
    assert report.counts.scored == 21 and [s.id for s in report.sequences] == ["seq-0", "seq-1"]
    assert [b.name for b in report.baselines] == ["majority"]
    assert (plots / f"{TAG}-seq-1.png").exists() and (plots / f"{TAG}-confusion.png").exists()
    wide = {"COLUMNS": "200"}  # Rich would wrap the table's cells at 80 columns
    table = CliRunner().invoke(_app(), ["evaluate", "--store", data, "--model-tag", TAG], env=wide)
    assert table.exit_code == 0, table.output
    assert "baseline: majority" in table.stdout and "seq-2" in table.stdout
    assert "inferred" in table.stdout
    narrow = CliRunner().invoke(_app(), ["evaluate", "--store", data, "--model-tag", TAG])
    # At 80 columns too, every metric is printed whole: metrics are the summary's rows.
    assert re.search(r"balanced_accuracy\W+\d\.\d{4}\W+\d\.\d{4}", narrow.stdout), narrow.stdout
    bad = CliRunner().invoke(_app(), ["evaluate", "--store", data, "--model-tag", "nope"])
    assert bad.exit_code == 1 and "Nothing to evaluate" in bad.output
