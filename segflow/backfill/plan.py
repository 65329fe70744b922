"""Planning a backfill: which partitions to run and which to skip, and why (pure, frozen data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from segflow.backfill.listing import Partition, list_partitions
from segflow.backfill.markers import read_markers
from segflow.config import BackfillParams

__all__ = ["Action", "BackfillPlan", "PlanItem", "make_plan", "plan_backfill"]

Action = Literal["run", "skip"]


@dataclass(frozen=True)
class PlanItem:
    """What a backfill does with one partition: ``run`` it or ``skip`` it, and why."""

    partition: Partition
    action: Action
    reason: str


@dataclass(frozen=True)
class BackfillPlan:
    """The partitions of a backfill, in date order, each with its action."""

    items: tuple[PlanItem, ...]
    ordered: bool

    @property
    def todo(self) -> list[Partition]:
        """The partitions to run, in date order."""
        return [i.partition for i in self.items if i.action == "run"]

    @property
    def skipped(self) -> int:
        """How many partitions are already done."""
        return sum(i.action == "skip" for i in self.items)

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per partition for tables: partition, action, reason, files."""
        return [
            {
                "partition": i.partition.date,
                "action": i.action,
                "reason": i.reason,
                "files": i.partition.files,
            }
            for i in self.items
        ]


def plan_backfill(
    partitions: Sequence[Partition],
    markers: dict[str, dict[str, Any]],
    *,
    force: bool = False,
    ordered: bool = False,
) -> BackfillPlan:
    """Decide, for each partition, whether to run or skip it (pure).

    A partition is skipped when its marker says ``done`` with the same identity, unless
    ``force``.

    Args:
        partitions: The listed partitions.
        markers: ``{date: {"identity", "status"}}`` from :func:`read_markers`.
        force: Run every partition.
        ordered: Flag runs that come before a done day (their frames land after it).

    Returns:
        The plan, in date order.

    >>> p = Partition("2026-01-01", "a/2026-01-01", "id1", 1)
    >>> plan_backfill([p], {"2026-01-01": {"identity": "id1", "status": "done"}}).skipped
    1
    >>> plan_backfill([p], {}).items[0].reason
    'new'
    """
    in_order = sorted(partitions, key=lambda p: p.date)
    decided = [(p, *_decide(p, markers.get(p.date), force)) for p in in_order]
    items = []
    for index, (partition, action, reason) in enumerate(decided):
        later_done = any(a == "skip" for _, a, _ in decided[index + 1 :])
        if ordered and action == "run" and later_done:
            reason += "; out of order: later days are already appended"
        items.append(PlanItem(partition, action, reason))
    return BackfillPlan(tuple(items), ordered)


def make_plan(params: BackfillParams) -> BackfillPlan:
    """List the archive, read the markers and plan the backfill ``params`` describes.

    Raises:
        SourceError: If a local archive folder does not exist.
    """
    options = params.store.resolved_options()
    partitions = list_partitions(params.archive, params.start, params.end, options)
    store = params.store.open()
    markers = {} if params.force else read_markers(store, params.model_tag)
    return plan_backfill(partitions, markers, force=params.force, ordered=params.ordered)


def _decide(partition: Partition, marker: dict[str, Any] | None, force: bool) -> tuple[Action, str]:
    if force:
        return "run", "forced"
    if marker is None:
        return "run", "new"
    if marker["status"] != "done":
        return "run", f"previous run {marker['status']}"
    if marker["identity"] != partition.identity:
        return "run", "files changed"
    return "skip", "done"
