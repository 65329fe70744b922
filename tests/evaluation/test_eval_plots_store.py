"""Evaluate's plots are drawn where the scoring runs and written by the flow's process.

On Dask the scoring task runs on a worker, whose filesystem is not the user's: the task
returns the PNGs as bytes and the flow writes them under ``plots_dir``. Here the cluster is
Prefect's thread runner (patched in for the Dask one), on a temporary Prefect server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import flows.evaluate  # (also: Prefect and TensorFlow imported outside CliRunner's streams)
from segflow.config import CheckpointConfig, EvaluateParams, ModelConfig, PredictParams, StoreConfig
from segflow.engine.engine import StreamingEngine
from segflow.evaluation import Evaluation, EvaluationReport
from segflow.evaluation.plots import save_plots
from segflow.predicting import predict
from segflow.registry import export_model
from segflow_cli import evaluate as evaluate_cli
from segflow_cli.app import app
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tasks.evaluate import evaluate_task
from tests.engine.store_helpers import write_sequence
from tests.prefect_harness import shared_prefect_harness

TAG = "tiny"
CONFIG = ModelConfig(frame_shape=(3,), lstm_units=[4], task="binary")


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    with shared_prefect_harness():
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Noisy labelled sequences of variable lengths, predicted by a seeded exported model."""
    root = tmp_path_factory.mktemp("plots-world")
    data, ckpt = str(root / "data"), str(root / "ckpt")
    repo = SequenceRepository(LocalStore(data))
    rng = np.random.default_rng(7)
    for i, length in enumerate(rng.integers(6, 20, size=4)):
        frames = rng.normal(size=(int(length), 3)).astype(np.float32)
        labels = (frames[:, 0] + 0.5 * rng.normal(size=int(length)) > 0).astype(np.float32)
        labels[rng.random(int(length)) < 0.1] = np.nan
        write_sequence(repo, f"seq-{i}", frames, chunk_length=4, labels=labels)
    engine = StreamingEngine(CONFIG, lanes=1, segment_length=1)
    weights = [rng.normal(0, 0.6, w.shape).astype(np.float32) for w in engine.model.get_weights()]
    engine.model.set_weights(weights)
    export_model(LocalStore(ckpt), TAG, engine, CONFIG, meta={"checkpoint": "ckpt-0"})
    params = PredictParams(
        store=StoreConfig(url=data), checkpoints=CheckpointConfig(url=ckpt), model_tag=TAG
    )
    predict(params, run_id="test")
    return data, ckpt


def _params(data: str, plots: Path, **changes: Any) -> EvaluateParams:
    base = {"store": StoreConfig(url=data), "model_tag": TAG, "plots_dir": str(plots)}
    return EvaluateParams(**{**base, "plot_sequence": "seq-1", **changes})


def test_the_task_returns_plots_as_bytes_and_writes_nothing(
    world: tuple[str, str], tmp_path: Path
) -> None:
    data, ckpt = world
    plots = tmp_path / "plots"
    evaluation = evaluate_task.fn(_params(data, plots), CheckpointConfig(url=ckpt))
    assert isinstance(evaluation, Evaluation) and not plots.exists()
    assert set(evaluation.images) == {
        f"{TAG}-confusion.png",
        f"{TAG}-curves.png",
        f"{TAG}-seq-1.png",
    }
    assert all(png.startswith(b"\x89PNG") for png in evaluation.images.values())
    assert evaluation.report.plots == ()  # nothing written yet: no paths to name


def test_flow_on_a_cluster_writes_the_workers_plots_here(
    prefect_server: None,
    world: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    runners: list[Any] = []

    def thread_runner(options: Any) -> ThreadPoolTaskRunner:
        runners.append(options)
        return ThreadPoolTaskRunner(max_workers=1)

    monkeypatch.setattr(flows.evaluate, "task_runner", thread_runner)
    data, ckpt = world
    plots = tmp_path / "here"
    report = flows.evaluate.evaluate(
        _params(data, plots, dask_workers=1), CheckpointConfig(url=ckpt)
    )
    assert runners, "the scoring did not go through the cluster's task runner"
    assert isinstance(report, EvaluationReport)
    names = sorted(Path(p).name for p in report.plots)
    assert names == sorted([f"{TAG}-confusion.png", f"{TAG}-curves.png", f"{TAG}-seq-1.png"])
    assert all(
        Path(p).parent == plots and Path(p).read_bytes()[:4] == b"\x89PNG" for p in report.plots
    )


def test_without_plots_dir_nothing_is_drawn(world: tuple[str, str]) -> None:
    data, ckpt = world
    params = EvaluateParams(store=StoreConfig(url=data), model_tag=TAG)
    evaluation = evaluate_task.fn(params, CheckpointConfig(url=ckpt))
    assert dict(evaluation.images) == {}
    assert evaluation.written(None) is evaluation.report


def test_save_plots_keeps_names_inside_the_directory(tmp_path: Path) -> None:
    written = save_plots({"../escape.png": b"png", "a.png": b"a"}, tmp_path / "out")
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["out/escape.png", "out/a.png"]


@pytest.fixture
def sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[EvaluateParams]:
    """The params ``segflow evaluate`` hands its flow (which does not run), in order."""
    seen: list[EvaluateParams] = []

    def run_flow(flow_fn: Any, params: EvaluateParams, name: str, *, expected: type) -> Any:
        seen.append(params)
        raise SystemExit(0)

    monkeypatch.setattr(evaluate_cli, "run_flow", run_flow)
    monkeypatch.setenv("SEGFLOW_SERVER_HOME", str(tmp_path))
    return seen


def test_cli_sends_an_absolute_plots_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sent: list[EvaluateParams]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "--store", str(tmp_path / "d"), "--model-tag", TAG, "--plots-dir", "p"]
    CliRunner().invoke(app, args)
    assert sent and sent[0].plots_dir == str(tmp_path.resolve() / "p")


def test_cli_start_frame_reaches_the_params_and_a_negative_one_is_a_usage_error(
    tmp_path: Path, sent: list[EvaluateParams]
) -> None:
    args = ["evaluate", "--store", str(tmp_path / "d"), "--model-tag", TAG]
    CliRunner().invoke(app, [*args, "--start-frame", "1827"])
    assert sent and sent[0].start_frame == 1827
    refused = CliRunner().invoke(app, [*args, "--start-frame", "-1"])
    assert refused.exit_code != 0 and "start_frame" in refused.output
    assert len(sent) == 1
