"""Rows lined up with labels: horizon, windowed rows, unlabelled frames, one label per
sequence, and the per-sequence table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segflow.errors import ConfigError
from segflow.evaluation import (
    EvaluationReport,
    align_many_to_many,
    align_many_to_one,
    score_aligned,
    sequence_table,
    summary_table,
)

NAN = np.nan


def test_forecast_rows_past_the_end_are_left_out() -> None:
    outputs = np.arange(6.0)[:, None]
    a = align_many_to_many("s", outputs, np.arange(6.0), horizon=3, persistence=False)
    assert a.past_end == 3 and a.rows == 3
    assert a.frames.tolist() == [3, 4, 5]
    assert a.labels.ravel().tolist() == [3.0, 4.0, 5.0]
    assert a.outputs.ravel().tolist() == [0.0, 1.0, 2.0]  # row t against label t+3


def test_windowed_nan_rows_are_left_out() -> None:
    outputs = np.array([[NAN], [NAN], [0.3], [0.9], [0.1]])  # windows of 3: rows 0, 1 NaN
    a = align_many_to_many("s", outputs, np.array([0, 1, 0, 1, 0]), horizon=0, persistence=False)
    assert a.no_prediction == 2 and a.rows == 3
    assert a.frames.tolist() == [2, 3, 4]


def test_nan_labels_are_left_out_and_counted() -> None:
    labels = np.array([[0.0], [NAN], [1.0], [NAN], [1.0]])
    outputs = np.full((5, 1), 0.7)
    a = align_many_to_many("s", outputs, labels, horizon=0, persistence=False)
    assert a.unlabelled == 2 and a.frames.tolist() == [0, 2, 4]
    report = score_aligned(
        [a], model_tag="m", task="binary", head="many_to_many", horizon=0, outputs=1
    )
    assert report.counts.unlabelled == 2 and report.model.rows == 3
    assert report.sequences[0].unlabelled == 2


def test_persistence_carries_the_last_known_label_over_gaps() -> None:
    labels = np.array([2.0, NAN, NAN, 5.0])
    a = align_many_to_many("s", np.zeros((4, 1)), labels, horizon=1, persistence=True)
    # rows 0..2 are for frames 1..3; only frame 3 is labelled; at row 2 the last known is 2
    assert a.frames.tolist() == [3] and a.persistence is not None
    assert a.persistence.ravel().tolist() == [2.0]
    assert (a.unlabelled, a.past_end) == (2, 1)


def test_many_to_one_uses_the_sequence_label() -> None:
    a = align_many_to_one("s", np.array([[0.1, 0.7, 0.2]]), np.array([[1]]), per_sequence=True)
    assert a.rows == 1 and a.labels.tolist() == [[1.0]] and a.frames.tolist() == [0]
    # per-frame labels: the model's target is the last frame's label
    b = align_many_to_one("s", np.array([[0.9]]), np.array([0, 0, 1]), per_sequence=False)
    assert b.labels.tolist() == [[1.0]] and b.frames.tolist() == [2]


def _many_to_one_report() -> EvaluationReport:
    outputs = {"a": [0.8, 0.1, 0.1], "b": [0.2, 0.5, 0.3], "c": [0.1, 0.2, 0.7], "d": [1, 0, 0]}
    labels = {"a": 0, "b": 0, "c": 2, "d": NAN}
    aligned = [
        align_many_to_one(k, np.array([v], dtype=float), np.array([labels[k]]), per_sequence=True)
        for k, v in outputs.items()
    ]
    return score_aligned(
        aligned,
        model_tag="m",
        task="multiclass",
        head="many_to_one",
        horizon=0,
        outputs=3,
        class_names=["sun", "rain", "snow"],
    )


def test_many_to_one_report_and_per_sequence_table() -> None:
    report = _many_to_one_report()
    assert report.model.rows == 3 and report.counts.unlabelled == 1
    assert report.model.accuracy == pytest.approx(2 / 3)  # type: ignore[union-attr]
    assert report.baselines[0].name == "majority"  # "sun" (2 of 3)
    table = sequence_table(report)
    assert table.columns[-2:] == ("model accuracy", "majority accuracy")
    rows = {row[0]: row for row in table.rows}
    assert rows["a"][1:] == ("1", "0", "0", "0", "0", "1.0000", "1.0000")
    assert rows["b"][-2:] == ("0.0000", "1.0000")
    assert rows["c"][-2:] == ("1.0000", "0.0000")
    assert rows["d"][1:3] == ("0", "1") and rows["d"][-2:] == ("-", "-")
    summary = summary_table(report)
    assert [row[0] for row in summary.rows] == ["model", "baseline: majority"]
    assert summary.columns[:3] == ("", "rows", "accuracy")


def test_report_json_round_trip() -> None:
    report = _many_to_one_report()
    again = EvaluationReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again == report


def test_nothing_to_score_is_refused() -> None:
    a = align_many_to_many("s", np.full((3, 1), NAN), np.zeros(3), horizon=0, persistence=False)
    with pytest.raises(ConfigError, match="No row of predictions 'm' can be scored"):
        score_aligned([a], model_tag="m", task="binary", head="many_to_many", horizon=0, outputs=1)


def test_labels_outside_the_classes_are_refused() -> None:
    a = align_many_to_many(
        "s", np.full((2, 1), 0.5), np.array([0, 3]), horizon=0, persistence=False
    )
    with pytest.raises(ConfigError, match="outside the model's 2 classes"):
        score_aligned([a], model_tag="m", task="binary", head="many_to_many", horizon=0, outputs=1)
