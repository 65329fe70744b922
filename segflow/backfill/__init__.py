"""Backfills over archives partitioned by date (Prefect-free).

An archive holds one folder per day, ``<archive>/YYYY-MM-DD/<files>``, locally or under an S3
prefix. A backfill:

1. lists the partitions between ``start`` and ``end`` with one pass over the archive (one
   paginated listing on S3), each with a cheap *identity*: a digest of its files' names,
   sizes and modification stamps (ETags on S3) -- no file is opened (:mod:`.listing`);
2. reads what was done before: one marker object per partition,
   ``backfills/<model_tag>/<YYYY-MM-DD>.json`` in the store, plus an index of them all
   (``backfills/<model_tag>/_index.json``) so that deciding over 10,000 done partitions
   costs one listing and one read, not 10,000 reads (:mod:`.markers`);
3. plans (:func:`plan_backfill`, pure): a partition is skipped when its marker says ``done``
   with the same identity, unless ``force`` (:mod:`.plan`);
4. runs each planned partition as one unit (:func:`run_partition`: ingest its sources, then
   predict their sequences, with :func:`segflow.landing.ingest_then_predict`) and writes its
   marker (:mod:`.partition`);
5. executes the plan through a submit function (:func:`execute_backfill`, :func:`run_plan`):
   Prefect's in the backfill flow, a thread pool in plain Python (:mod:`.executor`), and
   reports one row per partition (:class:`BackfillReport`, :mod:`.report`).

Two modes:

* **unordered** (default): partitions are independent; a sequence per source,
  ``<YYYY-MM-DD>_<name>``; at most ``concurrency`` run at once and a failure does not stop
  the others.
* **ordered**: a camera's recording continues day to day; each day's file is *appended* to
  the camera's sequence (id: the file name without the date), and prediction continues the
  grown sequence from its saved LSTM state. Days run in date order and the run stops at the
  first failure; a rerun resumes from there (ingest appends are idempotent per source, so a
  partially ingested day is completed, not duplicated).

A day that changes after later days were appended in ordered mode is appended again at the
end of the recording; the plan flags it as out of order.
"""

from __future__ import annotations

from segflow.backfill.executor import (
    PartitionFuture,
    Submitter,
    begin,
    execute_backfill,
    run_plan,
    thread_submitter,
)
from segflow.backfill.listing import Partition, list_partitions, local_files, partition_identity
from segflow.backfill.markers import (
    INDEX,
    MARKERS,
    marker_key,
    read_markers,
    update_index,
    write_marker,
)
from segflow.backfill.partition import PartitionResult, Status, run_partition, sequence_id_for
from segflow.backfill.plan import BackfillPlan, PlanItem, make_plan, plan_backfill
from segflow.backfill.report import BackfillReport

__all__ = [
    "INDEX",
    "MARKERS",
    "BackfillPlan",
    "BackfillReport",
    "Partition",
    "PartitionFuture",
    "PartitionResult",
    "PlanItem",
    "Status",
    "Submitter",
    "begin",
    "execute_backfill",
    "list_partitions",
    "local_files",
    "make_plan",
    "marker_key",
    "partition_identity",
    "plan_backfill",
    "read_markers",
    "run_partition",
    "run_plan",
    "sequence_id_for",
    "thread_submitter",
    "update_index",
    "write_marker",
]
