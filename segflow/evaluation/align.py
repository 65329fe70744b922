"""Lining stored predictions up with stored labels, one sequence at a time (pure numpy).

Prediction row ``t`` of a model with forecast horizon ``H`` is scored against the label of
frame ``t + H``. Rows are left out, and counted, for one reason each (the first that
applies):

- ``past_end``: ``t + H`` lies past the sequence's last frame (a genuine forecast: no label);
- ``before_start``: ``t + H`` lies before the first frame scored (``start_frame``: a split in
  time, the frames before it being the training part of a series);
- ``no_prediction``: the row holds NaN (the first ``N - 1`` rows of a windowed model);
- ``unlabelled``: the label is NaN (sparse annotation);
- ``no_history``: the persistence baseline has no earlier known label to repeat, so neither
  the model nor any baseline is scored there (every row compares on the same rows).

Persistence repeats the last known label: at row ``t`` the label of frame ``t`` (for
``H >= 1``) or of frame ``t - 1`` (for ``H = 0``), carried forward over unlabelled frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Aligned", "align_many_to_many", "align_many_to_one", "as_rows", "last_known"]


@dataclass(frozen=True)
class Aligned:
    """One sequence's scored rows and the rows left out.

    Attributes:
        sequence_id: The sequence.
        outputs: (n, outputs) the model's activated outputs on the scored rows.
        labels: (n, label columns) float64 labels of the frames those rows are for.
        frames: (n,) the frame each scored row is for (``t + horizon``).
        persistence: (n, label columns) the persistence baseline, or None when not used.
        past_end: Rows forecasting past the last frame.
        before_start: Rows forecasting a frame before the first one scored.
        no_prediction: Rows holding NaN outputs.
        unlabelled: Rows whose label is NaN.
        no_history: Rows without an earlier known label for persistence.
    """

    sequence_id: str
    outputs: np.ndarray
    labels: np.ndarray
    frames: np.ndarray
    persistence: np.ndarray | None = None
    past_end: int = 0
    no_prediction: int = 0
    unlabelled: int = 0
    no_history: int = 0
    before_start: int = 0

    @property
    def rows(self) -> int:
        """Rows scored."""
        return len(self.labels)


def as_rows(array: np.ndarray) -> np.ndarray:
    """``array`` as (rows, columns) float64: (T,) gets one column, a scalar is one row.

    >>> as_rows(np.array([1, 2])).shape, as_rows(np.zeros((0, 3, 2))).shape, as_rows(np.int64(3))
    ((2, 1), (0, 6), array([[3.]]))
    """
    values = np.asarray(array, dtype=np.float64)
    if values.ndim < 2:
        return values.reshape(-1, 1)
    return values.reshape(values.shape[0], int(np.prod(values.shape[1:])))


def last_known(labels: np.ndarray) -> np.ndarray:
    """Each frame's last known label at or before it (NaN before the first known one).

    Args:
        labels: (T, K) float labels, NaN where unlabelled (a row with any NaN is unlabelled).

    Returns:
        (T, K) the labels carried forward over unlabelled rows.

    >>> last_known(np.array([[np.nan], [1.0], [np.nan], [3.0]])).ravel().tolist()
    [nan, 1.0, 1.0, 3.0]
    """
    known = ~np.isnan(labels).any(axis=1)
    index = np.where(known, np.arange(len(labels)), -1)
    index = np.maximum.accumulate(index) if len(index) else index
    carried = labels[np.maximum(index, 0)].astype(np.float64, copy=True)
    carried[index < 0] = np.nan
    return carried


def align_many_to_many(
    sequence_id: str,
    outputs: np.ndarray,
    labels: np.ndarray,
    *,
    horizon: int,
    persistence: bool,
    start_frame: int = 0,
) -> Aligned:
    """Line up per-row predictions with per-frame labels.

    Args:
        sequence_id: The sequence.
        outputs: (R, outputs) the durable prediction rows.
        labels: (T, ...) the sequence's labels, one row per frame.
        horizon: Row ``t`` is for frame ``t + horizon``.
        persistence: Also build the persistence baseline (and drop rows it cannot cover).
        start_frame: Score only rows for frames at or after this one; persistence still
            carries labels from before it.

    Returns:
        The scored rows and the counts of rows left out.

    >>> a = align_many_to_many(
    ...     "s", np.arange(5.0)[:, None], np.array([0.0, 1, np.nan, 3, 4]), horizon=1,
    ...     persistence=True)
    >>> a.frames.tolist(), a.persistence.ravel().tolist(), a.past_end, a.unlabelled
    ([1, 3, 4], [0.0, 1.0, 3.0], 1, 1)
    >>> tail = align_many_to_many(
    ...     "s", np.arange(5.0)[:, None], np.array([0.0, 1, np.nan, 3, 4]), horizon=1,
    ...     persistence=True, start_frame=4)
    >>> tail.frames.tolist(), tail.persistence.ravel().tolist(), tail.before_start
    ([4], [3.0], 3)
    """
    rows = as_rows(outputs)
    values = as_rows(labels)
    targets = np.arange(len(rows)) + horizon
    inside = targets < len(values)
    early = inside & (targets < start_frame)
    inside &= ~early
    has_output = ~np.isnan(rows).any(axis=1)
    target_labels = values[np.minimum(targets, max(len(values) - 1, 0))]
    has_label = inside & ~np.isnan(target_labels).any(axis=1) if len(values) else inside
    keep = inside & has_output & has_label
    base = None
    no_history = 0
    if persistence:
        # H >= 1: at row t the label of frame t is known; H = 0: only frame t - 1's.
        source = np.arange(len(rows)) - (1 if horizon == 0 else 0)
        carried = last_known(values)
        valid = (source >= 0) & (source < len(values))
        base_all = np.full_like(target_labels, np.nan)
        base_all[valid] = carried[source[valid]]
        has_history = ~np.isnan(base_all).any(axis=1)
        no_history = int((keep & ~has_history).sum())
        keep &= has_history
        base = base_all[keep]
    return Aligned(
        sequence_id=sequence_id,
        outputs=rows[keep],
        labels=target_labels[keep],
        frames=targets[keep],
        persistence=base,
        past_end=int((targets >= len(values)).sum()),
        before_start=int(early.sum()),
        no_prediction=int((inside & ~has_output).sum()),
        unlabelled=int((inside & has_output & ~has_label).sum()),
        no_history=no_history,
    )


def align_many_to_one(
    sequence_id: str, outputs: np.ndarray, labels: np.ndarray, *, per_sequence: bool
) -> Aligned:
    """Line up a sequence's one prediction with its label.

    Args:
        sequence_id: The sequence.
        outputs: (1, outputs) the prediction.
        labels: (1, ...) a per-sequence label, or (T, ...) per-frame labels (the model
            predicts the label of the last frame).
        per_sequence: Whether ``labels`` is one row for the whole sequence.

    >>> align_many_to_one("s", np.array([[0.2, 0.8]]), np.array([1]), per_sequence=True).rows
    1
    >>> align_many_to_one("s", np.array([[0.2]]), np.array([np.nan]), per_sequence=True).unlabelled
    1
    """
    rows = as_rows(outputs)[:1]
    values = as_rows(labels)
    label = values[:1] if per_sequence else values[-1:]
    frame = np.array([0 if per_sequence else len(values) - 1], dtype=np.int64)
    if len(rows) == 0 or np.isnan(rows).any():
        return _empty(sequence_id, rows, values, no_prediction=1)
    if len(label) == 0 or np.isnan(label).any():
        return _empty(sequence_id, rows, values, unlabelled=1)
    return Aligned(sequence_id, rows, label, frame)


def _empty(
    sequence_id: str,
    rows: np.ndarray,
    values: np.ndarray,
    *,
    no_prediction: int = 0,
    unlabelled: int = 0,
) -> Aligned:
    """A sequence with nothing to score, and why."""
    return Aligned(
        sequence_id,
        np.zeros((0, rows.shape[1])),
        np.zeros((0, values.shape[1])),
        np.zeros(0, dtype=np.int64),
        no_prediction=no_prediction,
        unlabelled=unlabelled,
    )
