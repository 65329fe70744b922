"""Metrics of aligned predictions, computed with scikit-learn, as frozen results.

Classification takes class indices and a probability per class ((n, classes); a binary
model's one sigmoid output becomes ``[1 - p, p]``); regression takes values.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from sklearn import metrics as sk

from segflow.evaluation.align import as_rows

__all__ = [
    "ClassScores",
    "ClassificationScores",
    "OutputScores",
    "RegressionScores",
    "Scores",
    "class_indices",
    "classification_scores",
    "prior_probabilities",
    "probabilities",
    "regression_scores",
    "scores_from_json",
]


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one class (one-vs-rest), and its count of true rows."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationScores:
    """Scores of class predictions on ``rows`` rows.

    Attributes:
        rows: Rows scored.
        accuracy: Fraction of rows whose most probable class is the label.
        balanced_accuracy: Mean recall over the classes present in the labels.
        precision: Precision averaged over the classes present in the labels or the answers
            (macro); ``recall`` and ``f1`` likewise.
        log_loss: Cross-entropy of the probabilities (None for hard answers, e.g.
            persistence, whose loss is infinite whenever it is wrong).
        roc_auc: Area under the ROC curve (binary; macro one-vs-rest over the classes present
            for multiclass); None when only one class is present.
        pr_auc: Average precision (the area under the precision-recall curve), likewise.
        classes: Per-class scores.
        confusion: ``confusion[i][j]``: rows of true class i predicted as class j.
    """

    rows: int
    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    f1: float
    log_loss: float | None
    roc_auc: float | None
    pr_auc: float | None
    classes: tuple[ClassScores, ...] = ()
    confusion: tuple[tuple[int, ...], ...] = ()
    kind: Literal["classification"] = "classification"

    def headline(self) -> dict[str, float | None]:
        """The one-number metrics, by name (the columns of a summary table)."""
        names = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")
        values: dict[str, float | None] = {name: getattr(self, name) for name in names}
        return values | {"log_loss": self.log_loss, "roc_auc": self.roc_auc, "pr_auc": self.pr_auc}

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["classes"] = [asdict(c) for c in self.classes]
        data["confusion"] = [list(row) for row in self.confusion]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassificationScores:
        """Rebuild from :meth:`to_json`."""
        classes = tuple(ClassScores(**c) for c in data.get("classes", ()))
        confusion = tuple(tuple(row) for row in data.get("confusion", ()))
        return cls(**(data | {"classes": classes, "confusion": confusion}))


@dataclass(frozen=True)
class OutputScores:
    """Regression scores of one output column."""

    output: int
    mae: float
    rmse: float
    r2: float | None


@dataclass(frozen=True)
class RegressionScores:
    """Scores of predicted values on ``rows`` rows (averaged over the outputs).

    Attributes:
        rows: Rows scored.
        mae: Mean absolute error.
        rmse: Root mean squared error.
        r2: Coefficient of determination (None with fewer than two rows).
        outputs: Per-output scores, when there are several outputs.
    """

    rows: int
    mae: float
    rmse: float
    r2: float | None
    outputs: tuple[OutputScores, ...] = ()
    kind: Literal["regression"] = "regression"

    def headline(self) -> dict[str, float | None]:
        """The one-number metrics, by name."""
        return {"mae": self.mae, "rmse": self.rmse, "r2": self.r2}

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return data | {"outputs": [asdict(o) for o in self.outputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegressionScores:
        """Rebuild from :meth:`to_json`."""
        outputs = tuple(OutputScores(**o) for o in data.get("outputs", ()))
        return cls(**(data | {"outputs": outputs}))


Scores = ClassificationScores | RegressionScores


def scores_from_json(data: dict[str, Any]) -> Scores:
    """Rebuild either kind of scores from its ``to_json`` dict."""
    if data.get("kind") == "regression":
        return RegressionScores.from_json(data)
    return ClassificationScores.from_json(data)


def probabilities(outputs: np.ndarray, classes: int) -> np.ndarray:
    """(n, classes) class probabilities from activated outputs.

    >>> probabilities(np.array([[0.25], [0.9]]), 2).tolist()
    [[0.75, 0.25], [0.09999999999999998, 0.9]]
    """
    rows = as_rows(outputs)
    if rows.shape[1] == 1 and classes == 2:
        return np.concatenate([1.0 - rows, rows], axis=1)
    return rows


def class_indices(labels: np.ndarray, classes: int) -> np.ndarray:
    """(n,) integer classes from labels: one index column, or one-hot rows.

    >>> class_indices(np.array([[2.0], [0.0]]), 3).tolist(), class_indices(np.eye(3)[[1]], 3)
    ([2, 0], array([1]))
    """
    values = as_rows(labels)
    if values.shape[1] == classes > 1:
        return np.argmax(values, axis=1)
    return np.rint(values[:, 0]).astype(np.int64)


def prior_probabilities(y_true: np.ndarray, classes: int, rows: int) -> np.ndarray:
    """The majority baseline: every row gets the classes' frequencies in ``y_true``.

    Its most probable class is the majority class.

    >>> prior_probabilities(np.array([1, 1, 0, 1]), 2, 1).tolist()
    [[0.25, 0.75]]
    """
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=classes)[:classes]
    return np.tile(counts / max(counts.sum(), 1), (rows, 1))


def classification_scores(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    *,
    hard: bool = False,
) -> ClassificationScores:
    """Score class probabilities against class indices.

    Args:
        y_true: (n,) true class indices.
        probs: (n, classes) probabilities (one-hot rows for a hard answer).
        class_names: One name per class.
        hard: The probabilities are hard answers: log loss is left out.

    >>> s = classification_scores(np.array([0, 1, 1, 0]), np.array(
    ...     [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]), ["no", "yes"])
    >>> s.accuracy, s.balanced_accuracy, s.roc_auc, s.confusion
    (0.75, 0.75, 1.0, ((2, 0), (1, 1)))
    """
    labels = list(range(len(class_names)))
    predicted = np.argmax(probs, axis=1)
    with warnings.catch_warnings():
        # Classes absent from a small evaluation make sklearn warn; their scores are 0.
        warnings.simplefilter("ignore")
        p, r, f, support = sk.precision_recall_fscore_support(
            y_true, predicted, labels=labels, zero_division=0
        )
        # Macro over the classes present in the labels or the answers (scikit-learn's
        # default): a class absent from both would add a meaningless 0.
        macro = sk.precision_recall_fscore_support(
            y_true, predicted, average="macro", zero_division=0
        )
        per_class = tuple(
            ClassScores(str(name), float(p[i]), float(r[i]), float(f[i]), int(support[i]))
            for i, name in enumerate(class_names)
        )
        return ClassificationScores(
            rows=len(y_true),
            accuracy=float(sk.accuracy_score(y_true, predicted)),
            balanced_accuracy=float(sk.balanced_accuracy_score(y_true, predicted)),
            precision=float(macro[0]),
            recall=float(macro[1]),
            f1=float(macro[2]),
            log_loss=None if hard else float(sk.log_loss(y_true, probs, labels=labels)),
            roc_auc=_ranked(sk.roc_auc_score, y_true, probs),
            pr_auc=_ranked(sk.average_precision_score, y_true, probs),
            classes=per_class,
            confusion=_confusion(y_true, predicted, labels),
        )


def _ranked(metric: Any, y_true: np.ndarray, probs: np.ndarray) -> float | None:
    """A ranking metric: binary on P(class 1), else macro one-vs-rest over present classes."""
    if probs.shape[1] == 2:
        truth, score = (y_true == 1).astype(np.int64), probs[:, 1]
    else:
        present = np.unique(y_true)
        truth = (y_true[:, None] == present[None, :]).astype(np.int64)
        score = probs[:, present]
    if truth.size == 0 or np.all(truth == truth.flat[0]):
        return None  # one class only: no ranking to measure
    return float(metric(truth, score, average="macro") if truth.ndim == 2 else metric(truth, score))


def _confusion(y_true: np.ndarray, predicted: np.ndarray, labels: list[int]) -> tuple[Any, ...]:
    matrix = sk.confusion_matrix(y_true, predicted, labels=labels)
    return tuple(tuple(int(v) for v in row) for row in matrix)


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> RegressionScores:
    """Score predicted values ((n, outputs)) against labels of the same shape.

    >>> s = regression_scores(np.array([[1.0], [2.0], [3.0], [4.0]]),
    ...                       np.array([[1.5], [2.0], [2.0], [4.0]]))
    >>> s.mae, round(s.rmse, 4), s.r2
    (0.375, 0.559, 0.75)
    """
    truth = as_rows(y_true)
    pred = as_rows(y_pred)
    per_output: tuple[OutputScores, ...] = ()
    if truth.shape[1] > 1:
        per_output = tuple(
            OutputScores(k, *_regression(truth[:, k], pred[:, k])) for k in range(truth.shape[1])
        )
    mae, rmse, r2 = _regression(truth, pred)
    return RegressionScores(len(truth), mae, rmse, r2, per_output)


def _regression(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float | None]:
    mae = float(sk.mean_absolute_error(truth, pred))
    rmse = float(sk.root_mean_squared_error(truth, pred))
    r2 = float(sk.r2_score(truth, pred)) if len(truth) >= 2 else None
    return mae, rmse, r2
