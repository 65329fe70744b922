"""Scoring and drawing predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segflow.demo import DemoMetrics, DemoPaths, DemoResult
from segflow.report import markdown_table, plot_sequence, predicted_classes, score


@pytest.mark.parametrize(
    "outputs, classes",
    [
        (np.array([[0.2], [0.5], [0.9]]), [0, 1, 1]),  # one output: threshold 0.5
        (np.array([0.1, 0.7]), [0, 1]),  # flat vector
        (np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]), [1, 0]),  # several: argmax
    ],
)
def test_predicted_classes(outputs: np.ndarray, classes: list[int]) -> None:
    assert predicted_classes(outputs).tolist() == classes


def test_score_counts_frames_over_sequences() -> None:
    outputs = {"a": np.array([[0.9], [0.1], [0.8]]), "b": np.array([[0.2], [0.6]])}
    labels = {"a": np.array([1, 0, 0]), "b": np.array([0, 1])}
    result = score(["a", "b"], outputs.__getitem__, labels.__getitem__)
    assert (result.correct, result.frames) == (4, 5)
    assert result.accuracy == pytest.approx(0.8)


def test_score_refuses_length_mismatch() -> None:
    with pytest.raises(ValueError, match="'a': 2 predictions but 3 labels"):
        score(["a"], lambda _: np.zeros((2, 1)), lambda _: np.zeros(3))


def test_markdown_table_and_plot(tmp_path: Path) -> None:
    assert markdown_table(["x", "y"], [[1, 2]]).splitlines() == [
        "| x | y |",
        "|---|---|",
        "| 1 | 2 |",
    ]
    labels = np.array([0, 0, 1, 1, 0])
    path = plot_sequence(
        tmp_path / "p.png",
        "s",
        labels,
        {"m": labels * 0.9},
        events=np.diff(labels, prepend=0) != 0,
        segment_length=2,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_result_json() -> None:
    metrics = DemoMetrics(carried_val=0.9, reset_val=0.55, carried_pred=0.875, windowed_val=0.7)
    result = DemoResult(metrics, DemoPaths.under(Path("/w")))
    document = result.to_json()
    assert document["metrics"] == pytest.approx(
        {
            "carried_val": 0.9,
            "reset_val": 0.55,
            "carried_pred": 0.875,
            "windowed_val": 0.7,
            "gap_points": 35.0,
        }
    )
    assert list(document["where"]) == ["sources", "store", "checkpoints", "tensorboard", "plot"]
    assert document["where"]["plot"] == str(Path("/w") / "plot.png")
