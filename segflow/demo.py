"""What the demo produces: its metrics and where it wrote everything (Prefect-free)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["DemoMetrics", "DemoPaths", "DemoResult"]


@dataclass(frozen=True)
class DemoMetrics:
    """Frame accuracies of the demo's three models on the held-out videos.

    Attributes:
        carried_val: Validation accuracy of the model whose state is carried across segments.
        reset_val: Validation accuracy of the baseline whose state is reset every segment.
        carried_pred: Accuracy of the stored predictions of the carried-state model.
        windowed_val: Validation accuracy of the article's stateless model on windows of
            ``segment_length`` frames (it sees as far back as one segment, and no further).

    >>> metrics = DemoMetrics(carried_val=0.9, reset_val=0.6, carried_pred=0.88, windowed_val=0.7)
    >>> round(metrics.gap_points, 1)
    30.0
    """

    carried_val: float
    reset_val: float
    carried_pred: float
    windowed_val: float

    @property
    def gap_points(self) -> float:
        """How many percentage points carrying the state gains over resetting it."""
        return 100 * (self.carried_val - self.reset_val)

    def to_json(self) -> dict[str, float]:
        """Return a JSON-serialisable dict, ``gap_points`` included."""
        return {**asdict(self), "gap_points": self.gap_points}


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes: source videos, store, checkpoints, TensorBoard logs, the plot.

    >>> DemoPaths.under(Path("/tmp/demo")).plot
    '/tmp/demo/plot.png'
    """

    sources: str
    store: str
    checkpoints: str
    tensorboard: str
    plot: str

    @classmethod
    def under(cls, root: Path) -> DemoPaths:
        """The demo's layout under the working directory ``root``."""
        return cls(
            sources=str(root / "sources"),
            store=str(root / "store"),
            checkpoints=str(root / "checkpoints"),
            tensorboard=str(root / "tensorboard"),
            plot=str(root / "plot.png"),
        )

    def to_json(self) -> dict[str, str]:
        """Return ``{what: where}``, in the order above."""
        return asdict(self)


@dataclass(frozen=True)
class DemoResult:
    """The outcome of a demo run: its metrics and the paths of everything it wrote."""

    metrics: DemoMetrics
    paths: DemoPaths

    def to_json(self) -> dict[str, dict[str, float] | dict[str, str]]:
        """Return a JSON-serialisable dict: ``metrics`` and ``where``."""
        return {"metrics": self.metrics.to_json(), "where": self.paths.to_json()}
