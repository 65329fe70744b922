"""The report of an ingest run: totals, failures, and the JSON the CLI prints."""

from __future__ import annotations

import json

import pytest

from segflow.ingest import IngestReport, IngestResult, IngestSummary, summarize

RESULTS = (
    IngestResult("a.npy", "a", "written", frames=10, bytes=2_000_000, seconds=0.5),
    IngestResult("b.npy", "b", "skipped"),
    IngestResult("c.npy", "c", "failed", message="NaN at frame 3"),
    IngestResult("d.npy", "d", "appended", frames=5, bytes=1_000_000, seconds=0.25),
)


def test_report_totals_and_failures() -> None:
    report = IngestReport.build(RESULTS, seconds=1.5)
    assert report.results == RESULTS
    assert report.summary == IngestSummary(1, 1, 1, 1, 15, 3_000_000, 1.5)
    assert report.failed == (RESULTS[2],)
    assert report.failure_message() == "1 source(s) failed:\nc: NaN at frame 3"


def test_report_json_is_summary_then_results() -> None:
    document = IngestReport.build(RESULTS, seconds=1.5).to_json()
    assert list(document) == ["summary", "results"]
    assert document["summary"]["mb_per_s"] == 2.0 and document["summary"]["written"] == 1
    assert document["results"][2] == {
        "source": "c.npy",
        "sequence_id": "c",
        "status": "failed",
        "frames": 0,
        "bytes": 0,
        "seconds": 0.0,
        "message": "NaN at frame 3",
    }
    assert json.loads(json.dumps(document)) == document


def test_empty_run() -> None:
    report = IngestReport.build([], seconds=0.0)
    assert report.results == () and not report.failed
    assert report.summary.headline() == (
        "0 written, 0 appended, 0 skipped, 0 failed; 0 frames, 0.0 MB in 0.0 s (0.0 MB/s)"
    )


@pytest.mark.parametrize(
    "bytes_, seconds, rate",
    [
        (3_000_000, 1.5, "2.0"),  # exact
        (1_049_000, 1.0, "1.1"),  # rounded to two places first, as in the JSON: 1.05 -> 1.1
        (0, 0.0, "0.0"),  # no time: no rate
    ],
)
def test_headline_rate_matches_json(bytes_: int, seconds: float, rate: str) -> None:
    summary = summarize([IngestResult("s", "s", "written", bytes=bytes_)], seconds)
    assert summary.headline().endswith(f"({rate} MB/s)")
    assert f"{summary.to_json()['mb_per_s']:.1f}" == rate
