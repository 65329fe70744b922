"""What a prediction run reports: one row per sequence and the run's totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from segflow.predicting.plan import Action, PlanEntry
from segflow.registry import LoadedModel

__all__ = ["PredictReport", "SequenceReport", "build_report"]


@dataclass(frozen=True)
class SequenceReport:
    """What a run did with one sequence.

    Attributes:
        id: The sequence id.
        action: ``predict`` (from frame 0), ``continue`` (new frames only) or ``skip``.
        start: First frame predicted by this run (``stop`` when skipped).
        stop: Frames covered by the predictions afterwards.

    >>> SequenceReport("a", "continue", 10, 25).frames
    15
    """

    id: str
    action: Action
    start: int
    stop: int

    @property
    def frames(self) -> int:
        """Frames predicted by this run."""
        return self.stop - self.start


@dataclass(frozen=True)
class PredictReport:
    """Summary of a prediction run.

    Attributes:
        model_tag: The tag predictions were written under.
        checkpoint: Where the model came from.
        config_hash: Hash of the model configuration.
        predicted: Sequences predicted from frame 0.
        continued: Sequences continued over their new frames.
        skipped: Sequences already complete and unchanged.
        frames: Frames the run's plan streams (after a resume, those streamed before the
            interruption included).
        steps: Scheduler steps run by this process (after a resume: the remaining ones).
        resumed_from: Step the run resumed from, or None for a fresh run.
        seconds: Wall-clock duration.
        sequences: One row per selected sequence, in schedule order.
    """

    model_tag: str
    checkpoint: str
    config_hash: str
    predicted: int
    continued: int
    skipped: int
    frames: int
    steps: int
    resumed_from: int | None
    seconds: float
    sequences: tuple[SequenceReport, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["sequences"] = [asdict(row) | {"frames": row.frames} for row in self.sequences]
        return data


def build_report(
    tag: str,
    model: LoadedModel,
    entries: Sequence[PlanEntry],
    *,
    steps: int,
    start_step: int,
    seconds: float,
) -> PredictReport:
    """The report of a run of ``entries`` (its whole plan) that ran ``steps`` steps.

    Args:
        tag: The model tag predictions were written under.
        model: The model predicted with.
        entries: Every selected sequence, skipped ones too, in schedule order.
        steps: Steps this process ran.
        start_step: Step the run started from (0 for a fresh run).
        seconds: Wall-clock duration.
    """
    rows = tuple(SequenceReport(e.id, e.action, e.offset, e.stop) for e in entries)
    count = {a: sum(r.action == a for r in rows) for a in ("predict", "continue", "skip")}
    return PredictReport(
        model_tag=tag,
        checkpoint=model.checkpoint,
        config_hash=model.config.config_hash(),
        predicted=count["predict"],
        continued=count["continue"],
        skipped=count["skip"],
        frames=sum(r.frames for r in rows),
        steps=steps,
        resumed_from=start_step or None,
        seconds=seconds,
        sequences=rows,
    )
