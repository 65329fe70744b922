"""Ingest: landing long sequences from sources in Zarr v3, chunked along time by segment."""

from segflow.ingest.plan import IngestPlan, plan_ingest
from segflow.ingest.run import IngestResult, ingest_source
from segflow.ingest.summary import IngestReport, IngestSummary, results_table, summarize

__all__ = [
    "IngestPlan",
    "IngestReport",
    "IngestResult",
    "IngestSummary",
    "ingest_source",
    "plan_ingest",
    "results_table",
    "summarize",
]
