"""Summaries of an ingest run: counts, frames, bytes and throughput."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from segflow.ingest.run import IngestResult


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

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {**self.__dict__, "mb_per_s": round(self.mb_per_s, 2)}


def summarize(results: Sequence[IngestResult], seconds: float) -> IngestSummary:
    """Total ``results`` of a run that took ``seconds`` of wall time."""
    count = {s: sum(r.status == s for r in results) for s in ("written", "appended", "skipped", "failed")}
    return IngestSummary(
        written=count["written"],
        appended=count["appended"],
        skipped=count["skipped"],
        failed=count["failed"],
        frames=sum(r.frames for r in results),
        bytes=sum(r.bytes for r in results),
        seconds=seconds,
    )


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
