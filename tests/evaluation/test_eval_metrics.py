"""Each metric against a value computed by hand on a few rows, and the baselines' rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segflow.evaluation import (
    ClassificationScores,
    RegressionScores,
    align_many_to_many,
    classification_scores,
    regression_scores,
    score_aligned,
)

# Binary, six rows, imbalanced (4 negatives, 2 positives); P(class 1) per row.
Y = np.array([0, 0, 0, 0, 1, 1])
P1 = np.array([0.1, 0.4, 0.6, 0.2, 0.7, 0.3])
PROBS = np.stack([1 - P1, P1], axis=1)


def test_binary_metrics_match_hand_computed_values() -> None:
    s = classification_scores(Y, PROBS, ["dry", "rain"])
    # predicted 0,0,1,0,1,0: rows 2 and 5 wrong
    assert s.accuracy == pytest.approx(4 / 6)
    # recall of dry 3/4, of rain 1/2
    assert s.balanced_accuracy == pytest.approx((3 / 4 + 1 / 2) / 2)
    # dry: precision 3/4, recall 3/4 -> F1 3/4; rain: precision 1/2, recall 1/2 -> F1 1/2
    assert [c.f1 for c in s.classes] == pytest.approx([0.75, 0.5])
    assert s.f1 == pytest.approx(0.625)
    assert [c.support for c in s.classes] == [4, 2]
    # -mean(log of the probability given to the true class)
    want = -np.mean(np.log([0.9, 0.6, 0.4, 0.8, 0.7, 0.3]))
    assert s.log_loss == pytest.approx(want)
    # positive scores .7, .3 against negatives .1, .4, .6, .2: 4 + 2 of 8 pairs ranked right
    assert s.roc_auc == pytest.approx(6 / 8)
    # ranked .7(+) .6 .4 .3(+): precision 1/1 at the first positive, 2/4 at the second
    assert s.pr_auc == pytest.approx((1 + 0.5) / 2)
    assert s.confusion == ((3, 1), (1, 1))


def test_multiclass_metrics_one_vs_rest() -> None:
    y = np.array([0, 1, 2, 2, 1])
    probs = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.1, 0.6, 0.3], [0.3, 0.4, 0.3]]
    )
    s = classification_scores(y, probs, ["a", "b", "c"])
    assert s.accuracy == pytest.approx(4 / 5)  # row 3 (c) predicted b
    assert s.balanced_accuracy == pytest.approx((1 + 1 + 0.5) / 3)
    assert s.confusion == ((1, 0, 0), (0, 2, 0), (0, 1, 1))
    # one-vs-rest AUC per class: a 1 (0.7 above all), b 5/6 (0.6 of a c-row beats 0.4 of a
    # b-row), c 1 (0.6, 0.3 against 0.1, 0.1, 0.3: ties count a half -> 5.5/6)
    assert s.roc_auc == pytest.approx((1 + 5 / 6 + 5.5 / 6) / 3)
    assert s.log_loss == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.6, 0.3, 0.4])))


def test_macro_averages_skip_a_class_in_neither_labels_nor_answers() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    s = classification_scores(np.array([0, 0, 2]), probs, ["a", "b", "c"])
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)  # not 2/3 with "b" as 0
    assert s.classes[1].support == 0


def test_regression_metrics_match_hand_computed_values() -> None:
    truth = np.array([[1.0], [2.0], [3.0], [4.0]])
    pred = np.array([[1.5], [2.0], [2.0], [4.0]])
    s = regression_scores(truth, pred)
    assert s.mae == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert s.rmse == pytest.approx(math.sqrt((0.25 + 1) / 4))
    # 1 - SS_res / SS_tot = 1 - 1.25 / 5
    assert s.r2 == pytest.approx(0.75)


def test_regression_reports_each_output_when_several() -> None:
    truth = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 2.0]])
    pred = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    s = regression_scores(truth, pred)
    assert [o.mae for o in s.outputs] == pytest.approx([0.0, 1.0])
    assert s.mae == pytest.approx(0.5)


def _score(aligned: list, task: str, outputs: int = 1, horizon: int = 0):  # type: ignore[no-untyped-def]
    return score_aligned(
        aligned, model_tag="m", task=task, head="many_to_many", horizon=horizon, outputs=outputs
    )


def test_majority_baseline_on_the_same_rows() -> None:
    aligned = align_many_to_many("s", P1[:, None], Y, horizon=0, persistence=False)
    report = _score([aligned], "binary")
    (majority,) = report.baselines
    assert majority.name == "majority"
    assert isinstance(majority.scores, ClassificationScores)
    assert majority.scores.rows == report.model.rows == 6
    assert majority.scores.accuracy == pytest.approx(4 / 6)  # always "0"
    assert majority.scores.balanced_accuracy == pytest.approx(0.5)
    # every row gets the frequencies (2/3, 1/3)
    want = -(4 * math.log(2 / 3) + 2 * math.log(1 / 3)) / 6
    assert majority.scores.log_loss == pytest.approx(want)
    assert majority.scores.roc_auc == pytest.approx(0.5)  # constant scores rank nothing


def test_persistence_baseline_without_horizon_repeats_the_previous_label() -> None:
    labels = np.array([1.0, 2.0, 4.0, 7.0])
    outputs = np.array([[1.0], [2.5], [4.0], [6.0]])
    aligned = align_many_to_many("s", outputs, labels, horizon=0, persistence=True)
    report = _score([aligned], "regression")
    (persistence,) = report.baselines
    assert persistence.name == "persistence"
    # row 0 has no earlier label: left out for the model too
    assert report.counts.no_history == 1 and report.model.rows == persistence.scores.rows == 3
    # persistence answers 1, 2, 4 for 2, 4, 7: errors 1, 2, 3
    assert isinstance(persistence.scores, RegressionScores)
    assert persistence.scores.mae == pytest.approx(2.0)
    assert isinstance(report.model, RegressionScores)
    assert report.model.mae == pytest.approx((0.5 + 0 + 1) / 3)


def test_persistence_baseline_with_horizon_two_repeats_the_label_at_t() -> None:
    labels = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    outputs = np.array([[4.0], [7.0], [10.0], [99.0], [99.0]])  # rows 3, 4: past the end
    aligned = align_many_to_many("s", outputs, labels, horizon=2, persistence=True)
    report = _score([aligned], "regression", horizon=2)
    assert report.counts.past_end == 2 and report.counts.no_history == 0
    assert aligned.frames.tolist() == [2, 3, 4]
    (persistence,) = report.baselines
    # label t for label t+2: 1, 2, 4 for 4, 7, 11 -> errors 3, 5, 7
    assert isinstance(persistence.scores, RegressionScores)
    assert persistence.scores.mae == pytest.approx(5.0)
    assert isinstance(report.model, RegressionScores)
    assert report.model.mae == pytest.approx(1 / 3)


def test_classification_forecast_has_persistence_then_majority() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0])
    outputs = np.array([[0.2], [0.8], [0.9], [0.6], [0.3], [0.5]])
    aligned = align_many_to_many("s", outputs, labels, horizon=1, persistence=True)
    report = _score([aligned], "binary", horizon=1)
    assert [b.name for b in report.baselines] == ["persistence", "majority"]
    persistence = report.baselines[0].scores
    assert isinstance(persistence, ClassificationScores)
    # label t for t+1 on rows 0..4: 0,0,1,1,1 for 0,1,1,1,0 -> 3 of 5 right
    assert persistence.accuracy == pytest.approx(3 / 5)
    assert persistence.log_loss is None  # a hard answer has no useful cross-entropy
