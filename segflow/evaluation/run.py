"""An evaluation from the store: select, read predictions and labels, align, score, draw."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from segflow.config import CheckpointConfig, EvaluateParams, Task
from segflow.errors import ConfigError
from segflow.evaluation.align import Aligned, align_many_to_many, align_many_to_one, as_rows
from segflow.evaluation.plots import render_plots, save_plots
from segflow.evaluation.report import EvaluationReport
from segflow.evaluation.scoring import class_count, score_aligned
from segflow.ids import validate_id
from segflow.selection import select_sequences
from storage.predictions import PredictionMeta, PredictionRepository
from storage.sequences import SequenceRepository

__all__ = ["Evaluation", "evaluate", "infer_task", "score"]


@dataclass(frozen=True)
class Evaluation:
    """A report and its PNGs as bytes (by file name), not yet written anywhere.

    What the evaluate task returns: it may run on a Dask worker, whose filesystem is not the
    user's, so the flow writes the plots (:meth:`written`) where the user asked.
    """

    report: EvaluationReport
    images: Mapping[str, bytes] = field(default_factory=dict)

    def written(self, directory: str | Path | None) -> EvaluationReport:
        """Write the PNGs under ``directory`` (nothing without one); the report names them."""
        if directory is None or not self.images:
            return self.report
        paths = save_plots(self.images, Path(directory))
        return replace(self.report, plots=tuple(str(p) for p in paths))


@dataclass(frozen=True)
class _Loaded:
    """One sequence's stored predictions and labels."""

    sequence_id: str
    meta: PredictionMeta
    outputs: np.ndarray
    labels: np.ndarray
    per_sequence: bool


def evaluate(
    params: EvaluateParams,
    *,
    checkpoints: CheckpointConfig | None = None,
    task: Task | None = None,
) -> EvaluationReport:
    """Score the stored predictions of ``params.model_tag`` against the stored labels;
    write the plots under ``params.plots_dir`` (here: see :func:`score` to carry them).

    Args:
        params: The store, the selection, the tag, and where plots go.
        checkpoints: Where the model was exported: its configuration gives the task. Without
            it (and without ``task``) the task is inferred from the predictions.
        task: The task, when known and no checkpoints are given.

    Returns:
        The :class:`~segflow.evaluation.report.EvaluationReport`.

    Raises:
        ConfigError: Nothing to score, predictions of different shapes under one tag, an
            unknown ``plot_sequence``, or labels outside the model's classes.
        SequenceNotFoundError, IncompleteSequenceError: A selected id missing or incomplete.
        CheckpointError: ``checkpoints`` given but holding no model for the tag.
    """
    evaluation = score(params, checkpoints=checkpoints, task=task)
    return evaluation.written(params.plots_dir)


def score(
    params: EvaluateParams,
    *,
    checkpoints: CheckpointConfig | None = None,
    task: Task | None = None,
) -> Evaluation:
    """:func:`evaluate`, with the PNGs (when ``params.plots_dir`` asks for plots) returned
    as bytes instead of written: what runs where the scoring runs.

    Raises:
        As :func:`evaluate`.
    """
    tag = validate_id(params.model_tag, what="model tag")
    checkpoints = checkpoints or params.checkpoints
    store = params.store.open()
    repo, preds = SequenceRepository(store), PredictionRepository(store)
    ids = select_sequences(repo, params.selection)
    if params.plot_sequence is not None and params.plot_sequence not in ids:
        raise ConfigError(
            f"Received an invalid value for `plot_sequence`, expected one of the evaluated "
            f"sequences {ids[:10]}, got {params.plot_sequence!r}"
        )
    # A sequence without labels can never be scored: say so rather than "no predictions".
    no_labels = tuple(i for i in ids if repo.labels(i) is None)
    missing = tuple(i for i in ids if i not in no_labels and not preds.exists(tag, i))
    loaded = [_load(repo, preds, tag, i) for i in ids if i not in missing + no_labels]
    if not loaded:
        raise ConfigError(
            f"Nothing to evaluate for model tag {tag!r} in store {store.url!r}: of {len(ids)} "
            f"selected sequences {len(no_labels)} have no labels and {len(missing)} no "
            "predictions; run `segflow predict` first, on labelled sequences."
        )
    head, horizon, outputs = _shape(loaded, tag)
    notes: list[str] = []
    chosen, source = _task(loaded, tag, checkpoints, task, notes)
    persistence = head == "many_to_many" and (chosen == "regression" or horizon >= 1)
    if params.start_frame and head == "many_to_one":
        raise ConfigError(
            f"Received an invalid value for `start_frame`, expected 0 for the many-to-one "
            f"predictions of {tag!r} (one row per sequence, for its last frame), got "
            f"{params.start_frame}; select held-out sequences by id or pattern instead."
        )
    aligned = [_align(item, head, horizon, persistence, params.start_frame) for item in loaded]
    report = score_aligned(
        aligned,
        model_tag=tag,
        task=chosen,
        head=head,
        horizon=horizon,
        outputs=outputs,
        class_names=_class_names(
            repo, [i.sequence_id for i in loaded], class_count(chosen, outputs)
        ),
        task_source=source,
    )
    report = replace(
        report,
        missing=missing,
        unlabelled_sequences=no_labels,
        incomplete=tuple(i.sequence_id for i in loaded if not i.meta.complete),
        notes=tuple(notes),
    )
    if params.plots_dir is None:
        return Evaluation(report)
    return Evaluation(report, render_plots(report, aligned, params.plot_sequence))


def infer_task(outputs: list[np.ndarray], labels: list[np.ndarray]) -> Task:
    """Guess the task from predictions and labels, when no model config is at hand.

    Probabilities summing to one over several outputs: ``multiclass``; values in [0, 1]
    against labels in {0, 1}: ``binary``; anything else: ``regression``.

    >>> infer_task([np.array([[0.2, 0.8]])], [np.array([1.0])])
    'multiclass'
    >>> infer_task([np.array([[0.2], [0.9]])], [np.array([0.0, 1.0])])
    'binary'
    >>> infer_task([np.array([[2.5]])], [np.array([3.0])])
    'regression'
    """
    rows = np.concatenate([as_rows(o) for o in outputs])
    rows = rows[~np.isnan(rows).any(axis=1)]
    values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in labels])
    values = values[~np.isnan(values)]
    probabilities = rows.size > 0 and bool(np.all((rows >= 0) & (rows <= 1)))
    if probabilities and rows.shape[1] > 1 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
        return "multiclass"
    if probabilities and bool(np.all(np.isin(values, (0.0, 1.0)))):
        return "binary"
    return "regression"


def _load(
    repo: SequenceRepository, preds: PredictionRepository, tag: str, sequence_id: str
) -> _Loaded:
    meta = preds.meta(tag, sequence_id)
    sequence = repo.meta(sequence_id)
    per_sequence = sequence.label_kind == "per_sequence"
    array = repo.labels(sequence_id)
    assert array is not None  # sequences without labels were set aside
    labels = np.asarray(array[: 1 if per_sequence else sequence.length], dtype=np.float64)
    return _Loaded(sequence_id, meta, preds.read(tag, sequence_id), labels, per_sequence)


def _shape(loaded: list[_Loaded], tag: str) -> tuple[str, int, int]:
    """The head, horizon and outputs every sequence's predictions share."""
    shapes = {(i.meta.head, i.meta.horizon, i.meta.outputs) for i in loaded}
    if len(shapes) > 1:
        raise ConfigError(
            f"Predictions under model tag {tag!r} differ in (head, horizon, outputs): "
            f"{sorted(shapes)}; expected one model's. Re-run `segflow predict --recompute`."
        )
    head, horizon, outputs = shapes.pop()
    return head, horizon, outputs


def _task(
    loaded: list[_Loaded],
    tag: str,
    checkpoints: CheckpointConfig | None,
    task: Task | None,
    notes: list[str],
) -> tuple[Task, str]:
    """The task and where it came from; a note when the model changed since it predicted."""
    if checkpoints is not None:
        from segflow.registry import load_model  # loads Keras: only when a model is named

        config = load_model(checkpoints.open(), tag).config
        if any(i.meta.config_hash != config.config_hash() for i in loaded):
            notes.append(
                f"the model under {tag!r} is configured differently from the one that made "
                "some of these predictions; re-run `segflow predict` to score the current one"
            )
        return config.task, "model config"
    if task is not None:
        return task, "given"
    guessed = infer_task([i.outputs for i in loaded], [i.labels for i in loaded])
    notes.append(f"task {guessed!r} inferred from the predictions (no model config read)")
    return guessed, "inferred"


def _align(item: _Loaded, head: str, horizon: int, persistence: bool, start_frame: int) -> Aligned:
    if head == "many_to_one":
        return align_many_to_one(
            item.sequence_id, item.outputs, item.labels, per_sequence=item.per_sequence
        )
    return align_many_to_many(
        item.sequence_id,
        item.outputs,
        item.labels,
        horizon=horizon,
        persistence=persistence,
        start_frame=start_frame,
    )


def _class_names(repo: SequenceRepository, ids: list[str], classes: int) -> tuple[str, ...]:
    """Class names stored with the sequences (``class_names`` in the sequence's or its
    labels' attributes), when they name every class; else none (indices are used)."""
    for sequence_id in ids:
        group = repo.group(sequence_id)
        labels = repo.labels(sequence_id)
        places = [
            dict(group.attrs).get("segflow", {}),
            dict(group.attrs),
            {} if labels is None else dict(labels.attrs),
        ]
        for attrs in places:
            names = attrs.get("class_names") if isinstance(attrs, dict) else None
            if isinstance(names, list) and len(names) == classes and classes:
                return tuple(str(n) for n in names)
    return ()
