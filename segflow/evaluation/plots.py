"""PNGs of an evaluation: confusion matrix, ROC and precision-recall curves, one sequence.

matplotlib draws off screen (the Agg backend), as :mod:`segflow.report` does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segflow.evaluation.align import Aligned
from segflow.evaluation.metrics import ClassificationScores
from segflow.evaluation.report import EvaluationReport

__all__ = [
    "plot_confusion",
    "plot_curves",
    "plot_sequence_predictions",
    "render_plots",
    "save_plots",
    "write_plots",
]


def render_plots(
    report: EvaluationReport, aligned: Sequence[Aligned], sequence_id: str | None = None
) -> dict[str, bytes]:
    """An evaluation's PNGs (those of :func:`write_plots`) as bytes, by file name.

    Where the scoring runs (a Dask worker) need not be where the user wants the files: the
    bytes travel back with the result and :func:`save_plots` writes them there.
    """
    with tempfile.TemporaryDirectory(prefix="segflow-plots-") as tmp:
        return {
            path.name: path.read_bytes()
            for path in write_plots(report, aligned, Path(tmp), sequence_id)
        }


def save_plots(images: Mapping[str, bytes], directory: Path) -> list[Path]:
    """Write PNGs (by file name) under ``directory``, created if missing; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in images.items():
        path = directory / Path(name).name  # a name, never a path out of the directory
        path.write_bytes(data)
        written.append(path)
    return written


def write_plots(
    report: EvaluationReport,
    aligned: Sequence[Aligned],
    directory: Path,
    sequence_id: str | None = None,
) -> list[Path]:
    """Write an evaluation's PNGs under ``directory``; return their paths.

    The confusion matrix (classification), the ROC and precision-recall curves (one binary
    output, both classes present), and the predictions of ``sequence_id`` (default: the
    first sequence with scored rows) against its labels (per-frame predictions only).
    """
    tag = report.model_tag
    written = []
    scores = report.model
    if isinstance(scores, ClassificationScores):
        title = f"{tag}: confusion matrix ({scores.rows} rows)"
        path = directory / f"{tag}-confusion.png"
        written.append(plot_confusion(path, scores.confusion, report.class_names, title))
    ranked = isinstance(scores, ClassificationScores) and scores.roc_auc is not None
    if report.task == "binary" and report.outputs == 1 and ranked:
        truth = np.concatenate([np.rint(a.labels[:, 0]) for a in aligned])
        score = np.concatenate([a.outputs[:, 0] for a in aligned])
        written.append(plot_curves(directory / f"{tag}-curves.png", truth, score, tag))
    chosen = _plotted(aligned, sequence_id)
    if report.head == "many_to_many" and chosen is not None:
        written.append(_plot_one(report, chosen, directory / f"{tag}-{chosen.sequence_id}.png"))
    return written


def _plotted(aligned: Sequence[Aligned], sequence_id: str | None) -> Aligned | None:
    for item in aligned:
        if (item.sequence_id == sequence_id) if sequence_id else item.rows:
            return item
    return None


def _plot_one(report: EvaluationReport, item: Aligned, path: Path) -> Path:
    """A sequence's labels, the model's answers (and persistence) on one scale."""
    baseline = None if item.persistence is None else item.persistence[:, 0]
    if report.task == "multiclass":
        predictions = np.argmax(item.outputs, axis=1)
        labels = item.labels[:, 0] if item.labels.shape[1] == 1 else np.argmax(item.labels, 1)
        baseline = None if baseline is None or item.labels.shape[1] != 1 else baseline
        ylabel = "class"
    else:
        predictions, labels = item.outputs[:, 0], item.labels[:, 0]
        positive = report.class_names[1] if len(report.class_names) > 1 else "1"
        ylabel = f"P({positive})" if report.task == "binary" else "value"
    return plot_sequence_predictions(
        path, item.sequence_id, item.frames, labels, predictions, ylabel=ylabel, baseline=baseline
    )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def plot_confusion(
    path: Path, confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str
) -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted) to a PNG at ``path``."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = 3.2 + 0.4 * len(class_names)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    display = ConfusionMatrixDisplay(np.asarray(confusion), display_labels=list(class_names))
    display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
    ax.set_title(title)
    return _save(fig, path)


def plot_curves(path: Path, y_true: np.ndarray, p_positive: np.ndarray, title: str) -> Path:
    """Draw the ROC and precision-recall curves of binary predictions side by side."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    plt = _pyplot()
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(9, 4), dpi=110)
    RocCurveDisplay.from_predictions(y_true, p_positive, ax=roc, name="model")
    roc.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    PrecisionRecallDisplay.from_predictions(y_true, p_positive, ax=pr, name="model")
    roc.set_title("ROC")
    pr.set_title("precision-recall")
    fig.suptitle(title)
    return _save(fig, path)


def plot_sequence_predictions(
    path: Path,
    sequence_id: str,
    frames: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    *,
    ylabel: str,
    baseline: np.ndarray | None = None,
) -> Path:
    """Draw one sequence's predictions and labels against the frame they are for.

    Args:
        path: Where the PNG goes.
        sequence_id: The sequence (in the title).
        frames: (n,) the frame of each scored row.
        labels: (n,) the labels.
        predictions: (n,) the model's value for each row (a probability, class or value).
        ylabel: What the values are.
        baseline: (n,) a baseline's values, drawn dashed, or None.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110)
    ax.step(frames, labels, where="post", color="black", linewidth=2, label="label")
    ax.step(frames, predictions, where="post", linewidth=1.3, label="model")
    if baseline is not None:
        ax.step(frames, baseline, where="post", linewidth=1, linestyle="--", label="baseline")
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{sequence_id}: predictions against labels")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)
