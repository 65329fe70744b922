"""From aligned rows to a report: the model's scores, the baselines', per sequence (pure).

Baselines, on exactly the model's rows:

- ``majority`` (classification): every row gets the classes' frequencies among the scored
  labels, so its answer is the majority class;
- ``persistence`` (regression and forecasts, per-frame labels): the last known label (see
  :mod:`segflow.evaluation.align`); for classes a hard answer;
- ``mean`` (regression, one label per sequence): the mean of the scored labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as sk

from segflow.errors import ConfigError
from segflow.evaluation.align import Aligned
from segflow.evaluation.metrics import (
    Scores,
    class_indices,
    classification_scores,
    prior_probabilities,
    probabilities,
    regression_scores,
)
from segflow.evaluation.report import Baseline, EvaluationReport, RowCounts, SequenceScore

__all__ = ["class_count", "default_class_names", "score_aligned"]

MAJORITY = "predicts the most frequent class of the scored labels (with their frequencies)"
PERSISTENCE = "repeats the last known label (row t: label t, or label t-1 without a horizon)"
MEAN = "predicts the mean of the scored labels"


@dataclass(frozen=True)
class _Rows:
    """One sequence's rows, in the task's terms: truth, model answer, persistence answer."""

    truth: np.ndarray  # (n,) classes, or (n, outputs) values
    model: np.ndarray  # (n, classes) probabilities, or (n, outputs) values
    persistence: np.ndarray | None


def class_count(task: str, outputs: int) -> int:
    """Classes of a classification task: ``outputs`` for multiclass, 2 for binary.

    >>> class_count("multiclass", 4), class_count("binary", 3), class_count("regression", 2)
    (4, 2, 0)
    """
    return outputs if task == "multiclass" else 2 if task == "binary" else 0


def default_class_names(classes: int) -> tuple[str, ...]:
    """Class indices as names, when the store names none.

    >>> default_class_names(3)
    ('0', '1', '2')
    """
    return tuple(str(i) for i in range(classes))


def score_aligned(
    aligned: Sequence[Aligned],
    *,
    model_tag: str,
    task: str,
    head: str,
    horizon: int,
    outputs: int,
    class_names: Sequence[str] = (),
    task_source: str = "model config",
) -> EvaluationReport:
    """Score every sequence's aligned rows: the model, the baselines and each sequence.

    Args:
        aligned: One entry per sequence (see :mod:`segflow.evaluation.align`).
        model_tag: The predictions' tag.
        task: ``binary``, ``multiclass`` or ``regression``.
        head: ``many_to_many`` or ``many_to_one``.
        horizon: The forecast horizon.
        outputs: Size of one prediction row.
        class_names: Names of the classes (default: their indices).
        task_source: Where ``task`` came from.

    Returns:
        The report (without plots or the store's notes).

    Raises:
        ConfigError: If no row can be scored, or a label is not one of the classes.
    """
    classes = class_count(task, outputs)
    names = tuple(class_names) or default_class_names(classes)
    if classes and len(names) != classes:
        raise ConfigError(
            f"Received {len(names)} class names {list(names)} for a {task} model with "
            f"{classes} classes; expected one name per class."
        )
    rows = [_task_rows(a, task, classes) for a in aligned]
    counts = _counts(aligned)
    if counts.scored == 0:
        raise ConfigError(
            f"No row of predictions {model_tag!r} can be scored: {_describe(counts)}; expected "
            "at least one labelled frame with a prediction."
        )
    truth = np.concatenate([r.truth for r in rows])
    answers = np.concatenate([r.model for r in rows])
    with_persistence = all(r.persistence is not None for r in rows)
    model: Scores
    if classes:
        model = classification_scores(truth, answers, names)
        baselines = _class_baselines(rows, truth, classes, names, with_persistence)
    else:
        model = regression_scores(truth, answers)
        baselines = _value_baselines(rows, truth, with_persistence)
    sequences = tuple(
        _sequence_score(a, r, baselines[0], truth, classes)
        for a, r in zip(aligned, rows, strict=True)
    )
    return EvaluationReport(
        model_tag=model_tag,
        task=task,
        task_source=task_source,
        head=head,
        horizon=horizon,
        outputs=outputs,
        model=model,
        baselines=baselines,
        class_names=names if classes else (),
        sequences=sequences,
        counts=counts,
    )


def _task_rows(aligned: Aligned, task: str, classes: int) -> _Rows:
    persistence = aligned.persistence
    if task == "regression":
        return _Rows(aligned.labels, aligned.outputs, persistence)
    if task == "binary" and aligned.outputs.shape[1] > 1:
        # Several independent binary labels: each (row, label) pair is one decision.
        outputs = aligned.outputs.reshape(-1, 1)
        labels = aligned.labels.reshape(-1, 1)
        persistence = None if persistence is None else persistence.reshape(-1, 1)
    else:
        outputs, labels = aligned.outputs, aligned.labels
    truth = _checked_classes(class_indices(labels, classes), classes, aligned.sequence_id)
    hard = None
    if persistence is not None:
        hard = np.eye(classes)[np.clip(class_indices(persistence, classes), 0, classes - 1)]
    return _Rows(truth, probabilities(outputs, classes), hard)


def _checked_classes(truth: np.ndarray, classes: int, sequence_id: str) -> np.ndarray:
    bad = truth[(truth < 0) | (truth >= classes)]
    if len(bad):
        raise ConfigError(
            f"Sequence {sequence_id!r} has labels {sorted(set(bad.tolist()))[:5]} outside the "
            f"model's {classes} classes; expected class indices 0..{classes - 1}."
        )
    return truth


def _class_baselines(
    rows: list[_Rows],
    truth: np.ndarray,
    classes: int,
    names: tuple[str, ...],
    with_persistence: bool,
) -> tuple[Baseline, ...]:
    majority = Baseline(
        "majority",
        MAJORITY,
        classification_scores(truth, prior_probabilities(truth, classes, len(truth)), names),
    )
    if not with_persistence:
        return (majority,)
    hard = np.concatenate([r.persistence for r in rows if r.persistence is not None])
    persistence = Baseline(
        "persistence", PERSISTENCE, classification_scores(truth, hard, names, hard=True)
    )
    return (persistence, majority)


def _value_baselines(
    rows: list[_Rows], truth: np.ndarray, with_persistence: bool
) -> tuple[Baseline, ...]:
    if with_persistence:
        values = np.concatenate([r.persistence for r in rows if r.persistence is not None])
        return (Baseline("persistence", PERSISTENCE, regression_scores(truth, values)),)
    mean = np.tile(truth.mean(axis=0), (len(truth), 1))
    return (Baseline("mean", MEAN, regression_scores(truth, mean)),)


def _baseline_answer(baseline: Baseline, rows: _Rows, truth: np.ndarray, classes: int) -> Any:
    """The first baseline's answers on one sequence's rows."""
    if baseline.name == "persistence":
        return rows.persistence
    if classes:
        return prior_probabilities(truth, classes, len(rows.truth))
    return np.tile(truth.mean(axis=0), (len(rows.truth), 1))


def _sequence_score(
    aligned: Aligned, rows: _Rows, baseline: Baseline, truth: np.ndarray, classes: int
) -> SequenceScore:
    metric = "accuracy" if classes else "mae"
    model = base = None
    if len(rows.truth):
        answer = _baseline_answer(baseline, rows, truth, classes)
        model, base = (_headline(rows.truth, a, classes) for a in (rows.model, answer))
    return SequenceScore(
        id=aligned.sequence_id,
        rows=len(rows.truth),
        unlabelled=aligned.unlabelled,
        past_end=aligned.past_end,
        no_prediction=aligned.no_prediction,
        no_history=aligned.no_history,
        before_start=aligned.before_start,
        metric=metric,
        model=model,
        baseline=base,
    )


def _headline(truth: np.ndarray, answer: np.ndarray, classes: int) -> float:
    if classes:
        return float(sk.accuracy_score(truth, np.argmax(answer, axis=1)))
    return float(sk.mean_absolute_error(truth, answer))


def _counts(aligned: Sequence[Aligned]) -> RowCounts:
    return RowCounts(
        scored=sum(a.rows for a in aligned),
        unlabelled=sum(a.unlabelled for a in aligned),
        past_end=sum(a.past_end for a in aligned),
        no_prediction=sum(a.no_prediction for a in aligned),
        no_history=sum(a.no_history for a in aligned),
        before_start=sum(a.before_start for a in aligned),
    )


def _describe(counts: RowCounts) -> str:
    return (
        f"{counts.unlabelled} unlabelled, {counts.past_end} past the end, "
        f"{counts.no_prediction} without a prediction, {counts.no_history} without history, "
        f"{counts.before_start} before the first frame scored"
    )
