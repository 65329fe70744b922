"""The outcome of a backfill: one row per partition of its plan."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from segflow.backfill.partition import PartitionResult
from segflow.backfill.plan import BackfillPlan

__all__ = ["BackfillReport"]


@dataclass(frozen=True)
class BackfillReport:
    """The outcome of a backfill: one row per partition of the plan, in date order.

    Attributes:
        rows: One result per partition, skipped and never-run ones included.
        ordered: Whether the backfill ran in date order.
        dry_run: Whether it only listed what would run.
        seconds: Wall-clock duration.
        counts: Rows per status (``done``, ``failed``, ``skipped``, ``not run``).

    >>> from segflow.backfill.listing import Partition
    >>> from segflow.backfill.plan import plan_backfill
    >>> plan = plan_backfill([Partition("2026-01-01", "a/2026-01-01", "i", 1)], {})
    >>> BackfillReport.build(plan, [], seconds=0.0, dry_run=True).headline()
    'Dry run: 1 of 1 partitions would run, 0 already done.'
    """

    rows: tuple[PartitionResult, ...]
    ordered: bool
    dry_run: bool = False
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        plan: BackfillPlan,
        results: Iterable[PartitionResult],
        *,
        seconds: float,
        dry_run: bool = False,
    ) -> BackfillReport:
        """Merge the results into the plan: skipped and never-run partitions get a row too."""
        by_date = {r.partition: r for r in results}
        rows = tuple(
            by_date.get(i.partition.date)
            or PartitionResult(
                i.partition.date,
                i.partition.identity,
                "skipped" if i.action == "skip" else "not run",
                message=i.reason,
            )
            for i in plan.items
        )
        statuses = ("done", "failed", "skipped", "not run")
        counts = {s: sum(r.status == s for r in rows) for s in statuses}
        return cls(rows, plan.ordered, dry_run, seconds, counts)

    @property
    def failed(self) -> list[PartitionResult]:
        """The partitions that failed."""
        return [r for r in self.rows if r.status == "failed"]

    def headline(self) -> str:
        """One line for logs, the CLI and the artifact."""
        c = self.counts
        total = len(self.rows)
        if not total:
            return "No partition in the archive between the given dates: nothing to do."
        if c["skipped"] == total:
            return f"Nothing to do: all {total} partitions are already done (use force to redo)."
        if self.dry_run:
            return (
                f"Dry run: {c['not run']} of {total} partitions would run, "
                f"{c['skipped']} already done."
            )
        return (
            f"{c['done']} done, {c['failed']} failed, {c['skipped']} skipped, "
            f"{c['not run']} not run, of {total} partitions in {self.seconds:.1f} s."
        )

    def table(self) -> list[dict[str, Any]]:
        """Rows for the final table: partition, sequences, frames, status, seconds, message."""
        return [
            {
                "partition": r.partition,
                "sequences": len(r.sequences),
                "frames": r.frames,
                "status": r.status,
                "seconds": round(r.seconds, 2),
                "message": r.message,
            }
            for r in self.rows
        ]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "headline": self.headline(),
            "ordered": self.ordered,
            "dry_run": self.dry_run,
            "seconds": self.seconds,
            "counts": dict(self.counts),
            "rows": [r.to_json() for r in self.rows],
        }
