"""Forecasting weekly CO2 at Mauna Loa with segflow: stateful and windowed LSTMs vs persistence.

The same with the command line (this script calls the same core functions directly, without
Prefect; ``segflow server start`` first makes each command answer in about a second)::

    python examples/forecast_co2.py --csv-only --workdir co2     # co2/*.csv
    segflow ingest co2/co2-train-*.csv co2/co2-full.csv --store co2/data --segment-length 52 \
        --timestamp-column timestamp --label-column co2
    segflow train --store co2/data --checkpoints co2/ckpt --pattern 'co2-train-*' \
        --model-tag stateful-h4 --inputs features_and_labels --horizon 4 \
        --lanes 4 --segment-length 52 --epochs 20 --learning-rate 0.01
    segflow train --store co2/data --checkpoints co2/ckpt --pattern 'co2-train-*' \
        --model-tag windowed-h4 --inputs features_and_labels --horizon 4 \
        --time-steps 52 --batch-size 32 --epochs 5 --learning-rate 0.01
    segflow predict --store co2/data --checkpoints co2/ckpt --model-tag stateful-h4 \
        --id co2-full                  # inputs and horizon come from the model
    segflow evaluate --store co2/data --checkpoints co2/ckpt --model-tag stateful-h4 \
        --id co2-full --start-frame 1827   # the held-out weeks, against persistence

Run it as ``python examples/forecast_co2.py [--quick] [--workdir DIR]``: about 80 s on
2 CPU cores, under one with ``--quick`` (a few epochs: a smoke test, not a result).

The series is statsmodels' bundled copy of the Mauna Loa weekly CO2 record (March 1958 to
December 2001, 2284 weeks, 59 of them missing), so nothing is downloaded. The walk-through:

1. write the series as CSV files a user could have: a timestamp, seasonal features (sine and
   cosine of the time of year, two harmonics), an ``observed`` flag and the label column
   ``co2`` (the value itself, scaled);
2. ingest the first 80% of the weeks as four consecutive pieces ``co2-train-0..3`` (streamed
   side by side as four lanes) and every week as ``co2-full`` (to predict);
3. train a stateful model (each piece streamed through the LSTM, state carried along it) and
   a windowed one (a stateless LSTM on windows of 52 weeks), each one week and four weeks
   ahead, all with ``inputs=features_and_labels``: at week t the model sees the seasonal
   features and the CO2 of week t, and predicts the CO2 of week t+H;
4. predict ``co2-full`` and score the held-out last 20% (the rows whose target week is held
   out) with :func:`segflow.evaluation.evaluate` (``start_frame``: what ``segflow evaluate
   --start-frame`` runs); its MAE, in the label's scaled units, is mapped back to ppm. The
   baselines are computed here in ppm on the same weeks: persistence (the last known value)
   and a seasonal naive forecast (the value 52 weeks before the target week). segflow
   evaluate's own persistence row repeats the last known *label*, here the deviation from the
   trend, so it carries the trend along: a slightly stronger baseline than plain persistence.

Choices a real series forces:

- Missing weeks. With ``inputs=features_and_labels`` the label column is also an input.
  segflow feeds a missing (NaN) input as 0 so that it cannot poison the LSTM's state, and a
  NaN target takes no loss; but 0 here would mean "on the trend line", a poor guess. So the
  missing weeks carry the last observed value forward (causal: a forecast made at week t uses
  nothing after t) and ``observed`` tells the model which weeks were filled. Every held-out
  week was observed (the 59 missing ones are all in the training part), so the scores are
  on real values only.
- Scale. segflow standardizes the input features, but learns a regression target as it is
  stored; so the script scales the label before writing the CSV, with statistics of the
  training weeks only, and maps predictions back to ppm. CO2 keeps rising,
  so a plain standardization puts the held-out weeks above every training value, where the
  LSTM's bounded state saturates (measured: the stateful one-week model then scores 1.46 ppm,
  3.6x persistence, against 0.45 ppm as it is done here). The label is therefore the
  deviation from a straight-line trend fitted on the training weeks, divided by the
  deviation's standard deviation; forecasts add the trend back at their target week.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from segflow.evaluation import EvaluationReport

from segflow.config import (
    CheckpointConfig,
    EvaluateParams,
    PredictParams,
    Recipe,
    SelectionConfig,
    SourceConfig,
    StoreConfig,
    StreamConfig,
    TrainParams,
    WriteConfig,
)

#: Weeks in a year, near enough for seasonal features and the seasonal naive forecast.
SEASON = 52
#: Share of the weeks (the first ones) used for training; the rest are held out.
TRAIN_SHARE = 0.8
FEATURES = ("sin1", "cos1", "sin2", "cos2", "observed")
LABEL = "co2"
#: Consecutive pieces the training weeks are cut into, streamed side by side as lanes.
TRAIN_PIECES = 4
#: The training sequences' ids.
TRAIN_IDS = [f"co2-train-{i}" for i in range(TRAIN_PIECES)]
#: Adam's learning rate (high: the models are small and the series is short).
LEARNING_RATE = 1e-2


@dataclass(frozen=True)
class Series:
    """The weekly CO2 record: dates, raw values (NaN where missing), and the filled values."""

    dates: np.ndarray
    raw: np.ndarray
    filled: np.ndarray

    @property
    def train_rows(self) -> int:
        """Weeks in the training part (the first :data:`TRAIN_SHARE` of them)."""
        return int(len(self.raw) * TRAIN_SHARE)


@dataclass(frozen=True)
class Scale:
    """The value as the model sees it: its deviation from a straight-line trend, in units of
    the deviation's standard deviation, both fitted on the training weeks only.

    A plain standardization (one mean) is not enough for a rising series: the held-out weeks
    would lie above every training value, where the LSTM's bounded state saturates.
    """

    intercept: float
    slope: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Scale:
        """Fit the trend and the scale to ``values`` (week 0 onwards)."""
        slope, intercept = np.polyfit(np.arange(len(values)), values, 1)
        deviation = values - (intercept + slope * np.arange(len(values)))
        return cls(float(intercept), float(slope), float(deviation.std()))

    def encode(self, ppm: np.ndarray, weeks: np.ndarray) -> np.ndarray:
        """Values in ppm at ``weeks`` as the model's scaled deviations."""
        return (ppm - (self.intercept + self.slope * weeks)) / self.std

    def decode(self, scaled: np.ndarray, weeks: np.ndarray) -> np.ndarray:
        """The model's scaled deviations at ``weeks`` back to ppm."""
        return scaled * self.std + self.intercept + self.slope * weeks


@dataclass(frozen=True)
class ModelSpec:
    """One model of the comparison: its tag, recipe and training budget."""

    tag: str
    recipe: Recipe
    epochs: int
    lanes: int = TRAIN_PIECES
    segment_length: int = SEASON
    learning_rate: float = LEARNING_RATE

    @property
    def kind(self) -> str:
        """``stateful`` or ``windowed (N=...)`` for the table."""
        steps = self.recipe.time_steps
        return "stateful LSTM" if steps is None else f"windowed LSTM (N={steps})"


@dataclass(frozen=True)
class Score:
    """One row of the table: a forecaster's mean absolute error at one horizon."""

    model: str
    horizon: int
    mae: float
    persistence_mae: float
    weeks: int

    @property
    def ratio(self) -> float:
        """MAE relative to persistence at the same horizon (below 1: better)."""
        return self.mae / self.persistence_mae


@dataclass(frozen=True)
class Forecast:
    """One model's predictions of ``co2-full`` and segflow's evaluation of its held-out rows.

    Attributes:
        rows: The prediction rows, scaled: row t is the forecast made at week t.
        weeks: The week each row is for (t + horizon).
        report: :func:`segflow.evaluation.evaluate` on the rows for held-out weeks.
    """

    rows: np.ndarray
    weeks: np.ndarray
    report: EvaluationReport


@dataclass(frozen=True)
class ForecastResult:
    """What :func:`run` produced: the table rows, the predictions in ppm, where files are."""

    scores: tuple[Score, ...]
    predictions: dict[str, np.ndarray]
    workdir: Path
    seconds: float


def load_series() -> Series:
    """Load statsmodels' weekly CO2 record; fill missing weeks with the last observed value."""
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data
    raw = frame["co2"].to_numpy(dtype=np.float64)
    filled = raw.copy()
    for i in range(1, len(filled)):  # the first week is observed
        if np.isnan(filled[i]):
            filled[i] = filled[i - 1]
    return Series(frame.index.to_numpy(dtype="datetime64[D]"), raw, filled)


def seasonal_features(dates: np.ndarray) -> np.ndarray:
    """Sine and cosine of the time of year, first and second harmonics: ``(T, 4)``."""
    year = dates.astype("datetime64[Y]")
    phase = 2 * np.pi * (dates - year).astype(np.float64) / 365.25
    return np.stack([np.sin(phase), np.cos(phase), np.sin(2 * phase), np.cos(2 * phase)], 1)


def parts(series: Series) -> list[tuple[str, range]]:
    """The sequences to ingest: :data:`TRAIN_PIECES` consecutive pieces of the training weeks
    (streamed side by side as lanes) and the full series (predicted)."""
    bounds = np.linspace(0, series.train_rows, TRAIN_PIECES + 1).astype(int)
    pieces = [(name, range(a, b)) for name, (a, b) in zip(TRAIN_IDS, pairwise(bounds), strict=True)]
    return [*pieces, ("co2-full", range(len(series.raw)))]


def write_csv(path: Path, series: Series, scale: Scale, rows: range) -> None:
    """Write weeks ``rows`` as ``timestamp, sin1, cos1, sin2, cos2, observed, co2``."""
    season = seasonal_features(series.dates)
    observed = np.isfinite(series.raw)
    z = scale.encode(series.filled, np.arange(len(series.filled)))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *FEATURES, LABEL])
        for t in rows:
            values = [f"{v:.6f}" for v in season[t]]
            writer.writerow([str(series.dates[t]), *values, int(observed[t]), f"{z[t]:.6f}"])


def write_inputs(workdir: Path, series: Series) -> tuple[Scale, list[Path]]:
    """Write every sequence's CSV (see :func:`parts`).

    Returns:
        The scale fitted on the training weeks, and the CSV files.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    scale = Scale.fit(series.filled[: series.train_rows])
    paths = []
    for name, rows in parts(series):
        paths.append(workdir / f"{name}.csv")
        write_csv(paths[-1], series, scale, rows)
    return scale, paths


def ingest(store: StoreConfig, paths: Sequence[Path]) -> None:
    """Ingest each CSV as the sequence named like the file (``co2-full.csv``: ``co2-full``)."""
    from segflow.ingest import ingest_source
    from storage.sequences import SequenceRepository
    from storage.urls import open_store

    columns = SourceConfig(
        feature_columns=FEATURES, timestamp_column="timestamp", label_column=LABEL
    )
    repo = SequenceRepository(open_store(store.url))
    for path in paths:
        ingest_source(
            str(path),
            repo,
            sequence_id=path.stem,
            source_config=columns,
            write_config=WriteConfig(segment_length=SEASON),
        )


def model_specs(quick: bool) -> list[ModelSpec]:
    """The four models: stateful and windowed, one and four weeks ahead."""
    both = "features_and_labels"
    stateful, windowed = (3, 1) if quick else (20, 5)
    return [
        ModelSpec(f"stateful-h{h}", Recipe(inputs=both, horizon=h), stateful) for h in (1, 4)
    ] + [
        ModelSpec(
            f"windowed-h{h}",
            Recipe(inputs=both, horizon=h, time_steps=SEASON, batch_size=32),
            windowed,
        )
        for h in (1, 4)
    ]


def train_and_predict(spec: ModelSpec, store: StoreConfig, workdir: Path, start: int) -> Forecast:
    """Train ``spec`` on the training pieces, predict ``co2-full``, evaluate its held-out rows.

    The model is the one segflow infers from the data and the recipe (one LSTM layer of 32
    units, a regression head), as ``segflow train`` would build it. ``start`` is the first
    held-out week: the evaluation scores the rows whose target week is ``start`` or later.
    """
    from segflow.evaluation import evaluate
    from segflow.predicting import predict
    from segflow.training import train
    from storage.predictions import PredictionRepository
    from storage.urls import open_store

    checkpoints = CheckpointConfig(url=str(workdir / "ckpt"), every_steps=1000)
    stream = StreamConfig(lanes=spec.lanes, segment_length=spec.segment_length)
    train(
        TrainParams(
            store=store,
            selection=SelectionConfig(ids=TRAIN_IDS),
            stream=stream,
            checkpoints=checkpoints,
            epochs=spec.epochs,
            learning_rate=spec.learning_rate,
            model_tag=spec.tag,
            recipe=spec.recipe,
        )
    )
    held_out = SelectionConfig(ids=["co2-full"])
    predict(
        PredictParams(
            store=store,
            selection=held_out,
            checkpoints=checkpoints,
            model_tag=spec.tag,
            stream=stream,
        )
    )
    report = evaluate(
        EvaluateParams(store=store, selection=held_out, model_tag=spec.tag, start_frame=start),
        checkpoints=checkpoints,
    )
    predictions = PredictionRepository(open_store(store.url))
    rows = predictions.read(spec.tag, "co2-full")[:, 0]
    return Forecast(rows, predictions.meta(spec.tag, "co2-full").target_frames(len(rows)), report)


def model_mae(report: EvaluationReport, scale: Scale) -> float:
    """The model's MAE in ppm from segflow's report in the label's units.

    The label is a deviation from the trend divided by ``scale.std``; forecast and truth are
    both for the target week, where the trend is the same, so errors scale by ``std`` alone.
    """
    from segflow.evaluation import RegressionScores

    if not isinstance(report.model, RegressionScores):
        raise TypeError(f"Expected regression scores for {report.model_tag!r}, got {report.task}")
    return report.model.mae * scale.std


def score(
    series: Series, scale: Scale, horizon: int, reports: dict[str, EvaluationReport]
) -> list[Score]:
    """Score forecasts made ``horizon`` weeks ahead on the held-out observed weeks.

    ``reports`` maps a model name to segflow's evaluation of its held-out rows; persistence
    and the seasonal naive forecast are computed here, in ppm, on the same weeks.

    Raises:
        RuntimeError: If segflow scored other weeks than the held-out observed ones (a
            forecast misaligned with its target week).
    """
    targets = np.arange(series.train_rows, len(series.raw))
    targets = targets[np.isfinite(series.raw[targets])]
    truth = series.raw[targets]
    persistence = series.filled[targets - horizon]
    baselines = {
        "persistence": mae(truth, persistence),
        f"seasonal naive (week t+{horizon}-{SEASON})": mae(truth, series.filled[targets - SEASON]),
    }
    for name, report in reports.items():
        if report.counts.scored != len(targets):
            raise RuntimeError(
                f"segflow scored {report.counts.scored} rows of {name} at horizon {horizon}, "
                f"expected the {len(targets)} held-out observed weeks"
            )
    models = {name: model_mae(report, scale) for name, report in reports.items()}
    reference = baselines["persistence"]
    return [
        Score(name, horizon, value, reference, len(targets))
        for name, value in {**baselines, **models}.items()
    ]


def mae(truth: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error, scikit-learn's (what segflow evaluate uses)."""
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(truth, forecast))


def table(scores: Sequence[Score]) -> str:
    """The scores as a Markdown table."""
    lines = [
        "| model | horizon | MAE (ppm) | vs persistence |",
        "| --- | --- | --- | --- |",
    ]
    for s in scores:
        weeks = "week" if s.horizon == 1 else "weeks"
        lines.append(f"| {s.model} | {s.horizon} {weeks} | {s.mae:.3f} | {s.ratio:.2f}x |")
    return "\n".join(lines)


def run(workdir: Path, *, quick: bool = False) -> ForecastResult:
    """Run the whole walk-through in ``workdir`` (created if missing).

    Use a fresh ``workdir`` for each run: segflow carries on from what it finds there, so a
    model already trained under the same tag is not trained again.
    """
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    series = load_series()
    scale, paths = write_inputs(workdir, series)
    store = StoreConfig(url=str(workdir / "data"))
    ingest(store, paths)
    predictions: dict[str, np.ndarray] = {}
    scores: list[Score] = []
    specs = model_specs(quick)
    for horizon in sorted({s.recipe.horizon for s in specs}):
        reports = {}
        for spec in (s for s in specs if s.recipe.horizon == horizon):
            forecast = train_and_predict(spec, store, workdir, series.train_rows)
            predictions[spec.tag] = scale.decode(forecast.rows, forecast.weeks)
            reports[spec.kind] = forecast.report
        scores += score(series, scale, horizon, reports)
    return ForecastResult(tuple(scores), predictions, workdir, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: run the walk-through and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only (smoke test)")
    parser.add_argument("--workdir", default="co2-forecast", help="where every output goes")
    parser.add_argument(
        "--csv-only", action="store_true", help="only write the CSVs (for the CLI commands)"
    )
    args = parser.parse_args(argv)
    from segflow.runtime import configure_runtime

    configure_runtime()  # before TensorFlow is imported
    workdir = Path(args.workdir)
    if args.csv_only:
        write_inputs(workdir, load_series())
        return 0
    result = run(workdir, quick=args.quick)
    print(table(result.scores))
    print(f"\n{len(result.scores)} rows in {result.seconds:.0f} s; outputs in {workdir}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
