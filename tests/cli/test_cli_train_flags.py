"""``segflow train``'s early-stopping, optimizer, class-weight and precision options map onto
``TrainParams`` and override a config file's fields (the flow is mocked: no training here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import flows.train  # noqa: F401  (Prefect and TensorFlow imported outside CliRunner's streams)
from segflow.config import TrainParams
from segflow.training import TrainReport
from segflow_cli import commands
from segflow_cli.app import app


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[TrainParams]:
    """The params each ``segflow train`` would run the flow with."""
    seen: list[TrainParams] = []

    def run_flow(flow_fn: Any, params: TrainParams, name: str, *, expected: type) -> Any:
        seen.append(params)
        return TrainReport(1, 2, [{"loss": 0.5}], "ckpt-2", params.model_tag, "0" * 64, 0.1, 9)

    monkeypatch.setattr(commands, "run_flow", run_flow)
    monkeypatch.setenv("SEGFLOW_SERVER_HOME", str(tmp_path))  # no developer's server found
    return seen


def _train(tmp_path: Path, *args: str) -> Any:
    base = ["train", "--store", str(tmp_path / "data"), "--checkpoints", str(tmp_path / "c")]
    return CliRunner().invoke(app, [*base, *args])


def test_flags_set_their_fields(captured: list[TrainParams], tmp_path: Path) -> None:
    args = ["--early-stopping-patience", "2", "--early-stopping-min-delta", "0.01"]
    args += ["--monitor", "val_accuracy", "--optimizer", "adamw", "--learning-rate", "0.02"]
    args += ["--weight-decay", "0.1", "--clipnorm", "1.5", "--schedule", "cosine"]
    args += ["--warmup-steps", "10", "--class-weight", "balanced", "--mixed-precision"]
    result = _train(tmp_path, *args)
    assert result.exit_code == 0, result.output
    params = captured[-1]
    assert params.early_stopping is not None
    assert params.early_stopping.model_dump() == {
        "monitor": "val_accuracy",
        "patience": 2,
        "min_delta": 0.01,
    }
    optimizer = params.optimizer
    assert (optimizer.name, optimizer.weight_decay, optimizer.clipnorm) == ("adamw", 0.1, 1.5)
    assert (optimizer.schedule, optimizer.warmup_steps) == ("cosine", 10)
    assert params.learning_rate == 0.02
    assert (params.class_weight, params.mixed_precision) == ("balanced", True)


def test_without_flags_the_defaults_stay(captured: list[TrainParams], tmp_path: Path) -> None:
    assert _train(tmp_path).exit_code == 0
    params = captured[-1]
    assert params.early_stopping is None  # not switched on by an empty group of options
    assert params.optimizer == TrainParams().optimizer
    assert (params.class_weight, params.mixed_precision) == (None, False)


def test_a_flag_overrides_only_its_field_of_the_config_file(
    captured: list[TrainParams], tmp_path: Path
) -> None:
    config = tmp_path / "train.json"
    config.write_text(
        json.dumps(
            {
                "early_stopping": {"monitor": "val_accuracy", "patience": 5},
                "optimizer": {"name": "adamw", "weight_decay": 0.01, "schedule": "plateau"},
                "class_weight": {"0": 1.0, "1": 3.0},
                "mixed_precision": True,
            }
        )
    )
    args = ["--config", str(config), "--early-stopping-patience", "2", "--clipnorm", "1.0"]
    result = _train(tmp_path, *args, "--class-weight", "0=1,1=5", "--no-mixed-precision")
    assert result.exit_code == 0, result.output
    params = captured[-1]
    assert params.early_stopping is not None
    assert (params.early_stopping.monitor, params.early_stopping.patience) == ("val_accuracy", 2)
    optimizer = params.optimizer
    assert (optimizer.name, optimizer.weight_decay, optimizer.schedule) == (
        "adamw",
        0.01,
        "plateau",
    )
    assert optimizer.clipnorm == 1.0
    assert params.class_weight == {0: 1.0, 1: 5.0}
    assert params.mixed_precision is False


def test_the_config_file_alone_is_kept(captured: list[TrainParams], tmp_path: Path) -> None:
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"early_stopping": {"patience": 4}, "class_weight": "balanced"}))
    assert _train(tmp_path, "--config", str(config)).exit_code == 0
    params = captured[-1]
    assert params.early_stopping is not None and params.early_stopping.patience == 4
    assert params.class_weight == "balanced"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # neither 'balanced' nor CLASS=WEIGHT pairs
        (["--class-weight", "heavy"], "--class-weight 'heavy'"),
        # a schedule that does not exist
        (["--schedule", "linear"], "schedule"),
        # a weight must be positive
        (["--class-weight", "0=0"], "class_weight"),
        # patience counts epochs
        (["--early-stopping-patience", "0"], "patience"),
    ],
)
def test_bad_values_fail_in_one_line(
    captured: list[TrainParams], tmp_path: Path, args: list[str], message: str
) -> None:
    result = _train(tmp_path, *args)
    assert result.exit_code != 0 and not captured
    assert message in result.output
    assert len([line for line in result.output.splitlines() if "error" in line]) == 1


def test_train_and_predict_select_by_pattern_and_partition(
    captured: list[TrainParams], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import flows.predict  # noqa: F401  (as above)
    from segflow.predicting import PredictReport

    result = _train(tmp_path, "--pattern", "train-*", "--partition", "2026-01-31")
    assert result.exit_code == 0, result.output
    selection = captured[-1].selection
    assert (selection.pattern, selection.partition) == ("train-*", "2026-01-31")

    predicted: list[Any] = []

    def run_flow(flow_fn: Any, params: Any, name: str, *, expected: type) -> Any:
        predicted.append(params)
        return PredictReport(params.model_tag, "c", "h", 0, 0, 0, 0, 0, None, 0.1)

    monkeypatch.setattr(commands, "run_flow", run_flow)
    args = ["predict", "--store", str(tmp_path / "d"), "--pattern", "test-*", "--json"]
    result = CliRunner().invoke(app, [*args, "--partition", "2026-02-01"])
    assert result.exit_code == 0, result.output
    selection = predicted[-1].selection
    assert (selection.ids, selection.pattern, selection.partition) == (
        None,
        "test-*",
        "2026-02-01",
    )
