"""Prefect tasks for ingest: coarse tasks of one or more whole sources, never per frame or chunk."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from segflow.config import IngestParams
from segflow.ingest import IngestSummary, results_table
from segflow.ingest.batch import ingest_one, plan_sources
from segflow.ingest.run import IngestResult


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
) -> list[dict[str, Any]]:
    """Ingest sources in order, in one task; ``label`` names the run.

    Bad input comes back as a ``failed`` result for that source. A retry re-runs the whole
    group: sequences already complete (or sources already appended) are skipped.
    """
    return [ingest_one(uri, sequence_id, params).to_json() for uri, sequence_id in pairs]


def group_label(pairs: list[tuple[str, str]]) -> str:
    """``cam-1`` for one source, ``cam-1 .. cam-9 (9)`` for a group."""
    first, last = pairs[0][1], pairs[-1][1]
    return first if len(pairs) == 1 else f"{first} .. {last} ({len(pairs)})"


@task(name="publish-ingest-summary", cache_policy=NO_CACHE)
def publish_summary(results: list[dict[str, Any]], summary: IngestSummary) -> None:
    """Publish the per-source table and totals as a Prefect table artifact."""
    rows = results_table([IngestResult(**r) for r in results])
    totals = summary.to_json()
    create_table_artifact(
        key="ingest-summary",
        table=rows,
        description=(
            f"**segflow ingest**: {totals['written']} written, {totals['appended']} appended, "
            f"{totals['skipped']} skipped, {totals['failed']} failed; {totals['frames']} frames, "
            f"{totals['bytes'] / 1e6:.1f} MB in {totals['seconds']:.1f} s "
            f"({totals['mb_per_s']:.1f} MB/s)."
        ),
    )
