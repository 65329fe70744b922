"""Prefect tasks for ingest: coarse tasks of one or more whole sources, never per frame or chunk."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from segflow.config import IngestParams
from segflow.ingest import IngestReport, IngestResult, results_table
from segflow.ingest.batch import ingest_many, plan_sources


@task(name="discover-sources", cache_policy=NO_CACHE)
def discover_sources(params: IngestParams) -> list[tuple[str, str]]:
    """Expand the sources of ``params`` into (uri, sequence id) pairs."""
    return plan_sources(params)


@task(
    name="ingest-sources",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    task_run_name="ingest {label}",
)
def ingest_sources_task(
    pairs: list[tuple[str, str]], params: IngestParams, label: str
) -> list[IngestResult]:
    """Ingest sources in one task (appends in order); ``label`` names the run.

    Bad input comes back as a ``failed`` result for that source. A retry re-runs the whole
    group: sequences already complete (or sources already appended) are skipped.
    """
    return ingest_many(pairs, params)


def group_label(pairs: list[tuple[str, str]]) -> str:
    """``cam-1`` for one source, ``cam-1 .. cam-9 (9)`` for a group.

    >>> group_label([("a.mp4", "cam-1")]), group_label([("a", "cam-1"), ("b", "cam-2")])
    ('cam-1', 'cam-1 .. cam-2 (2)')
    """
    first, last = pairs[0][1], pairs[-1][1]
    return first if len(pairs) == 1 else f"{first} .. {last} ({len(pairs)})"


@task(name="publish-ingest-summary", cache_policy=NO_CACHE)
def publish_summary(report: IngestReport) -> None:
    """Publish the per-source table and totals as a Prefect table artifact."""
    create_table_artifact(
        key="ingest-summary",
        table=results_table(report.results),
        description=f"**segflow ingest**: {report.summary.headline()}.",
    )
