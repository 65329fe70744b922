"""Summaries of an ingest run: counts, frames, bytes and throughput, and the run's report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from segflow.ingest.run import IngestResult

__all__ = ["IngestReport", "IngestSummary", "results_table", "summarize"]


@dataclass(frozen=True)
class IngestSummary:
    """Totals over the results of one ingest run."""

    written: int
    appended: int
    skipped: int
    failed: int
    frames: int
    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Decoded frame megabytes (10^6 bytes) written per second of wall time."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def headline(self) -> str:
        """One line of totals, for the CLI and the summary artifact.

        >>> IngestSummary(2, 0, 1, 0, 300, 4_000_000, 2.0).headline()
        '2 written, 0 appended, 1 skipped, 0 failed; 300 frames, 4.0 MB in 2.0 s (2.0 MB/s)'
        """
        # The rate is rounded as in to_json, so every place shows the same figure.
        return (
            f"{self.written} written, {self.appended} appended, {self.skipped} skipped, "
            f"{self.failed} failed; {self.frames} frames, {self.bytes / 1e6:.1f} MB "
            f"in {self.seconds:.1f} s ({round(self.mb_per_s, 2):.1f} MB/s)"
        )

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {**self.__dict__, "mb_per_s": round(self.mb_per_s, 2)}


def summarize(results: Sequence[IngestResult], seconds: float) -> IngestSummary:
    """Total ``results`` of a run that took ``seconds`` of wall time."""
    statuses = ("written", "appended", "skipped", "failed")
    count = {s: sum(r.status == s for r in results) for s in statuses}
    return IngestSummary(
        written=count["written"],
        appended=count["appended"],
        skipped=count["skipped"],
        failed=count["failed"],
        frames=sum(r.frames for r in results),
        bytes=sum(r.bytes for r in results),
        seconds=seconds,
    )


@dataclass(frozen=True)
class IngestReport:
    """What an ingest run did: one result per source, in source order, and their totals.

    Attributes:
        results: One result per source.
        summary: Totals over ``results``.

    >>> report = IngestReport.build(
    ...     [IngestResult("a.npy", "a", "written", frames=10), IngestResult("b.npy", "b", "failed",
    ...     message="NaN at frame 3")], seconds=1.0)
    >>> report.summary.written, [r.sequence_id for r in report.failed]
    (1, ['b'])
    >>> report.failure_message()
    '1 source(s) failed:\\nb: NaN at frame 3'
    """

    results: tuple[IngestResult, ...]
    summary: IngestSummary

    @classmethod
    def build(cls, results: Iterable[IngestResult], *, seconds: float) -> IngestReport:
        """The report of a run that produced ``results`` in ``seconds`` of wall time."""
        results = tuple(results)
        return cls(results, summarize(results, seconds))

    @property
    def failed(self) -> tuple[IngestResult, ...]:
        """The sources that failed."""
        return tuple(r for r in self.results if r.status == "failed")

    def failure_message(self) -> str:
        """Which sources failed and why, one per line (for a Failed state's message)."""
        lines = [f"{r.sequence_id}: {r.message}" for r in self.failed]
        return f"{len(lines)} source(s) failed:\n" + "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict: ``summary`` and ``results``."""
        return {"summary": self.summary.to_json(), "results": [r.to_json() for r in self.results]}


def results_table(results: Sequence[IngestResult]) -> list[dict[str, Any]]:
    """Rows for a table artifact or a Rich table, one per source."""
    return [
        {
            "sequence": r.sequence_id,
            "source": r.source,
            "status": r.status,
            "frames": r.frames,
            "MB": round(r.bytes / 1e6, 2),
            "seconds": round(r.seconds, 2),
            "note": r.message,
        }
        for r in results
    ]
