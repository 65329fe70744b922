"""Scoring predictions against labels and drawing them (Prefect-free).

Used by the demo and by anyone checking a model on labelled sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Score:
    """Frame-level accuracy of binary or multiclass predictions over some sequences."""

    correct: int
    frames: int

    @property
    def accuracy(self) -> float:
        """Fraction of frames predicted correctly (0 when there are no frames)."""
        return self.correct / self.frames if self.frames else 0.0


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Classes from activated outputs: threshold 0.5 for one output, argmax for several."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(len(outputs)) >= 0.5).astype(np.int64)
    return np.argmax(outputs, axis=-1)


def score(
    ids: Sequence[str],
    read_outputs: Callable[[str], np.ndarray],
    read_labels: Callable[[str], np.ndarray],
) -> Score:
    """Score per-frame predictions of ``ids`` against their per-frame labels.

    Raises:
        ValueError: If a sequence's predictions and labels differ in length.
    """
    correct = frames = 0
    for sequence_id in ids:
        classes = predicted_classes(np.asarray(read_outputs(sequence_id)))
        raw = np.asarray(read_labels(sequence_id))
        labels = raw.reshape(len(raw), -1)[:, 0]
        if len(labels) != len(classes):
            raise ValueError(
                f"Sequence {sequence_id!r}: {len(classes)} predictions but {len(labels)} labels."
            )
        correct += int((classes == labels.astype(np.int64)).sum())
        frames += len(classes)
    return Score(correct, frames)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_sequence(
    path: Path,
    sequence_id: str,
    labels: np.ndarray,
    curves: dict[str, np.ndarray],
    *,
    events: np.ndarray | None = None,
    segment_length: int | None = None,
) -> Path:
    """Draw labels and one or more prediction curves of one sequence to a PNG at ``path``.

    Flash ``events`` are marked in orange; ``segment_length`` shades every other segment, to
    show the state carried across segment boundaries.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110)
    frames = np.arange(len(labels))
    ax.step(frames, labels, where="post", color="black", linewidth=2, label="label")
    for name, values in curves.items():
        ax.step(frames[: len(values)], values, where="post", linewidth=1.3, label=name)
    if segment_length:
        for start in range(segment_length, len(labels), 2 * segment_length):
            ax.axvspan(start, start + segment_length, color="grey", alpha=0.08, linewidth=0)
    if events is not None:
        for frame in np.flatnonzero(events).tolist():
            ax.axvline(frame, color="orange", alpha=0.35, linewidth=1)
    ax.set_xlabel("frame")
    ax.set_ylabel("P(odd number of flashes)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{sequence_id}: predictions against labels")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_history(history: Sequence[dict[str, float]], title: str = "training") -> bytes:
    """Training curves as PNG bytes: loss, and the metric, per epoch, training and validation.

    Args:
        history: One dict per epoch, as :class:`~segflow.training.TrainReport` holds it
            (``loss``, ``accuracy`` or ``mae``, and their ``val_`` counterparts).
        title: The figure's title (e.g. the model tag).

    >>> plot_history([{"loss": 1.0, "mae": 0.9}, {"loss": 0.5, "mae": 0.6}])[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history) + 1)
    names = [n for n in ("loss", "accuracy", "mae") if any(n in h for h in history)]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), dpi=110)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        for key, style in ((name, "-o"), (f"val_{name}", "--s")):
            values = [h.get(key, np.nan) for h in history]
            if not np.isnan(values).all():
                ax.plot(epochs, values, style, markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
