"""Ordered backfills by recording: each camera's days in date order, cameras side by side.

In an ordered backfill a camera's day appends to its sequence, so its days must land in date
order; different cameras' sequences are independent. A *lane* is one camera's files, day by
day (:func:`plan_lanes`, pure); lanes run in parallel, each stopping at its first failure
(:func:`run_lane`). A day is done when every one of its files landed and, if asked, the
sequences were predicted afterwards (:func:`fold_days`, pure).

>>> lanes = plan_lanes({"2026-01-02": ["a/2026-01-02/cam1.npy"],
...                     "2026-01-01": ["a/2026-01-01/cam1.npy", "a/2026-01-01/cam2.npy"]})
>>> [(lane.sequence_id, [s.date for s in lane.steps]) for lane in lanes]
[('cam1', ['2026-01-01', '2026-01-02']), ('cam2', ['2026-01-01'])]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from segflow.backfill.listing import Partition
from segflow.config import BackfillParams
from segflow.errors import ConfigError
from segflow.ingest import IngestResult

__all__ = ["DayOutcome", "Lane", "LaneResult", "LaneStep", "fold_days", "plan_lanes", "run_lane"]


@dataclass(frozen=True)
class LaneStep:
    """One day's file of a recording."""

    date: str
    uri: str


@dataclass(frozen=True)
class Lane:
    """One recording's files in date order: they append to ``sequence_id`` one after another."""

    sequence_id: str
    steps: tuple[LaneStep, ...]


@dataclass(frozen=True)
class LaneResult:
    """What a lane did: one ingest result per step that ran (it stops at a failure)."""

    sequence_id: str
    results: tuple[tuple[str, IngestResult], ...]


@dataclass(frozen=True)
class DayOutcome:
    """A day's ingest across lanes: ``failed`` (a file of it failed: ``message`` says which),
    ``incomplete`` (a lane stopped before it) or ``landed``."""

    date: str
    status: str
    sequences: tuple[str, ...] = ()
    frames: int = 0
    message: str = ""


def plan_lanes(files: Mapping[str, Sequence[str]]) -> tuple[Lane, ...]:
    """One lane per recording from ``{date: [uri, ...]}``, lanes sorted by sequence id.

    Raises:
        ConfigError: If two files of one day would append to the same sequence.
    """
    from segflow.backfill.partition import sequence_id_for

    steps: dict[str, list[LaneStep]] = {}
    for date in sorted(files):
        seen: dict[str, str] = {}
        for uri in files[date]:
            sequence_id = sequence_id_for(uri, date, ordered=True)
            if sequence_id in seen:
                raise ConfigError(
                    f"Sources {seen[sequence_id]!r} and {uri!r} of partition {date} would both "
                    f"become sequence {sequence_id!r}; rename one."
                )
            seen[sequence_id] = uri
            steps.setdefault(sequence_id, []).append(LaneStep(date, uri))
    return tuple(Lane(sid, tuple(lane)) for sid, lane in sorted(steps.items()))


def run_lane(lane: Lane, params: BackfillParams) -> LaneResult:
    """Append the lane's files to its sequence in date order; stop at the first failure.

    Appends are idempotent per source, so a rerun skips what a previous run appended.
    """
    from segflow.backfill.partition import ingest_params_for
    from segflow.ingest.batch import ingest_many

    results: list[tuple[str, IngestResult]] = []
    for step in lane.steps:
        ingest = ingest_params_for(step.uri, params)
        (result,) = ingest_many([(step.uri, lane.sequence_id)], ingest)
        results.append((step.date, result))
        if result.status == "failed":
            break  # the later days continue this one: they wait for a fix
    return LaneResult(lane.sequence_id, tuple(results))


def fold_days(
    partitions: Sequence[Partition], lanes: Sequence[Lane], results: Sequence[LaneResult]
) -> list[DayOutcome]:
    """Each partition's outcome from the lanes' results (pure), in the order of ``partitions``.

    >>> from segflow.ingest import IngestResult
    >>> days = [Partition("2026-01-01", "a", "i", 1), Partition("2026-01-02", "b", "j", 1)]
    >>> lane = Lane("cam1", (LaneStep("2026-01-01", "x"), LaneStep("2026-01-02", "y")))
    >>> bad = IngestResult("x", "cam1", "failed", message="broken")
    >>> [d.status for d in fold_days(days, [lane], [LaneResult("cam1", (("2026-01-01", bad),))])]
    ['failed', 'incomplete']
    """
    ran = {(date, r.sequence_id): r for lane in results for date, r in lane.results}
    outcomes = []
    for partition in partitions:
        day = [(lane.sequence_id, s) for lane in lanes for s in lane.steps]
        mine = [(sid, ran.get((partition.date, sid))) for sid, s in day if s.date == partition.date]
        failed = [r for _, r in mine if r is not None and r.status == "failed"]
        if failed:
            message = "; ".join(f"{r.source}: {r.message}" for r in failed)
            outcomes.append(DayOutcome(partition.date, "failed", message=message))
        elif any(r is None for _, r in mine):
            outcomes.append(
                DayOutcome(partition.date, "incomplete", message="an earlier day failed")
            )
        else:
            landed = tuple(sid for sid, _ in mine)
            frames = sum(r.frames for _, r in mine if r is not None)
            outcomes.append(DayOutcome(partition.date, "landed", landed, frames))
    return outcomes
