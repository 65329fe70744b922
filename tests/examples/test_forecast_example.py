"""The CO2 forecasting walk-through (``examples/forecast_co2.py``) at its ``--quick`` size.

It runs once per module (about half a minute on 2 cores): every model is trained for a few
epochs only, so the checks are about shape and plumbing, with a loose bound on quality that a
barely trained model still meets.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from storage.local import LocalStore
from storage.predictions import PredictionRepository

pytest.importorskip("statsmodels", reason="the example's data ships with statsmodels")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "forecast_co2.py"
TAGS = ("stateful-h1", "stateful-h4", "windowed-h1", "windowed-h4")


def _load() -> ModuleType:
    """Import the script by path (``examples/`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("forecast_co2", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def result(example: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> object:
    return example.run(tmp_path_factory.mktemp("co2"), quick=True)


def test_the_table_has_a_row_per_forecaster_and_horizon(example: ModuleType, result) -> None:
    rows = {(s.model, s.horizon) for s in result.scores}
    for horizon in (1, 4):
        assert {
            ("persistence", horizon),
            (f"seasonal naive (week t+{horizon}-52)", horizon),
            ("stateful LSTM", horizon),
            ("windowed LSTM (N=52)", horizon),
        } <= rows
    assert len(result.scores) == len(rows) == 8
    text = example.table(result.scores)
    assert len(text.splitlines()) == 2 + 8
    assert "| stateful LSTM | 4 weeks |" in text
    # Every forecaster is scored on the same held-out observed weeks.
    assert len({s.weeks for s in result.scores if s.horizon == 4}) == 1


def test_predictions_are_finite_where_a_model_can_forecast(result) -> None:
    weeks = 2284
    for tag in TAGS:
        rows = result.predictions[tag]
        assert rows.shape == (weeks,)
        first = 51 if tag.startswith("windowed") else 0  # no full window of 52 weeks before
        assert np.isnan(rows[:first]).all()
        assert np.isfinite(rows[first:]).all(), tag


def test_the_model_rows_are_segflow_evaluates_on_the_held_out_weeks(
    example: ModuleType, result
) -> None:
    # The table's model MAE is segflow's (scaled back to ppm): recompute it from the stored
    # predictions in ppm, on the held-out weeks, and it must agree.
    series = example.load_series()
    for tag, kind in (("stateful-h4", "stateful LSTM"), ("windowed-h1", "windowed LSTM (N=52)")):
        horizon = int(tag[-1])
        (score,) = [s for s in result.scores if (s.model, s.horizon) == (kind, horizon)]
        targets = np.arange(series.train_rows, len(series.raw))
        forecast = result.predictions[tag][targets - horizon]
        assert score.weeks == len(targets)
        assert score.mae == pytest.approx(np.mean(np.abs(series.raw[targets] - forecast)), rel=1e-4)


def test_the_one_week_stateful_model_is_in_a_sane_range(result) -> None:
    # A few epochs do not make a good model (persistence is hard to beat one week ahead);
    # this only catches a broken pipeline: scaling, alignment of forecasts to target weeks.
    (score,) = [s for s in result.scores if (s.model, s.horizon) == ("stateful LSTM", 1)]
    assert np.isfinite(score.mae)
    assert score.mae < 10 * score.persistence_mae


def test_outputs_are_in_the_workdir(result) -> None:
    workdir = result.workdir
    for name in ("co2-train-0", "co2-train-3", "co2-full"):
        assert (workdir / f"{name}.csv").is_file()
    predictions = PredictionRepository(LocalStore(workdir / "data"))
    for tag in TAGS:
        assert predictions.ids(tag) == ["co2-full"]
        meta = predictions.meta(tag, "co2-full")
        assert meta.complete
        assert meta.horizon == int(tag[-1])
        assert meta.time_steps == (52 if tag.startswith("windowed") else None)
        assert (workdir / "ckpt" / "models" / tag).is_dir()


def test_csv_only_writes_what_the_command_line_needs(example: ModuleType, tmp_path: Path) -> None:
    assert example.main(["--csv-only", "--workdir", str(tmp_path)]) == 0
    header = (tmp_path / "co2-full.csv").read_text().splitlines()[0]
    assert header == "timestamp,sin1,cos1,sin2,cos2,observed,co2"
    lengths = [
        len((tmp_path / f"co2-train-{i}.csv").read_text().splitlines()) - 1 for i in range(4)
    ]
    assert sum(lengths) == int(2284 * 0.8)
