"""Ingest and an unordered backfill on a real Dask cluster, the store on the local S3 server.

The cluster (``dask scheduler`` and two ``dask worker`` processes) comes from
``tests/dask/conftest.py``; the flows join it by ``dask_address``. Dask's task stream shows
that the coarse tasks ran on the cluster's workers, not in the test's process.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
from distributed import get_task_stream

from flows.backfill import backfill
from flows.ingest import ingest
from segflow.backfill import BackfillReport
from segflow.config import BackfillParams, IngestParams, StoreConfig, WriteConfig
from segflow.ingest import IngestReport
from storage import open_store
from storage.sequences import SequenceRepository
from tests.dask.conftest import DaskCluster


def _store(url: str, options: dict[str, Any]) -> StoreConfig:
    # Only the endpoint: the credentials come from the AWS_* environment (the test's and the
    # workers'), never from the parameters.
    return StoreConfig(url=url, storage_options={"endpoint_url": options["endpoint_url"]})


def _recordings(folder: Path, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = {}
    for index in range(count):
        frames = rng.normal(size=(int(rng.integers(5, 60)), 6)).astype("float32")
        np.save(folder / f"rec-{index:02d}.npy", frames)
        data[f"rec-{index:02d}"] = frames
    return data


def _task_workers(stream: list[dict[str, Any]]) -> list[str]:
    """The worker of each task of the stream (the subflow's tasks: the only ones on Dask)."""
    return [t["worker"] for t in stream]


def test_many_sources_then_appends_ingest_on_the_cluster(
    dask_cluster: DaskCluster, tmp_path: Path, s3_store_url: str, s3_storage_options: dict
) -> None:
    data = _recordings(tmp_path / "src", 20)
    params = IngestParams(
        sources=[str(tmp_path / "src")],
        store=_store(s3_store_url, s3_storage_options),
        write=WriteConfig(segment_length=8),
        dask_address=dask_cluster.address,
    )
    with dask_cluster.client() as client, get_task_stream(client) as stream:
        state = ingest(params, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, IngestReport) and report.summary.written == 20
    assert [r.sequence_id for r in report.results] == sorted(data)
    workers = _task_workers(stream.data)
    assert 2 <= len(workers) <= 8, "a few coarse tasks per worker, never one per source"
    assert len(set(workers)) == 2, "both workers took groups"
    repo = SequenceRepository(params.store.open())
    for sequence_id in ("rec-00", "rec-11", "rec-19"):
        np.testing.assert_array_equal(repo.frames(sequence_id)[:], data[sequence_id])

    # Appends: one task per sequence, its sources in order; the two sequences side by side.
    parts = tmp_path / "parts"  # parts/step<n>/<sequence id>.npy: two parts per sequence
    rng = np.random.default_rng(1)
    pieces: dict[str, list[np.ndarray]] = {"rec-00": [], "rec-01": []}
    pairs = []
    for step in range(2):
        for sequence_id, piece in pieces.items():
            frames = rng.normal(size=(int(rng.integers(3, 20)), 6)).astype("float32")
            path = parts / f"step{step}" / f"{sequence_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, frames)
            piece.append(frames)
            pairs.append(str(path))
    appends = params.model_copy(update={"sources": pairs, "append": True})
    with dask_cluster.client() as client, get_task_stream(client) as stream:
        state = ingest(appends, return_state=True)
    assert state.is_completed(), state.message
    assert state.result().summary.appended == 4
    assert len(_task_workers(stream.data)) == 2  # one per sequence
    for sequence_id, piece in pieces.items():
        expected = np.concatenate([data[sequence_id], *piece])
        np.testing.assert_array_equal(repo.frames(sequence_id)[:], expected)


def test_unordered_backfill_on_the_cluster(
    dask_cluster: DaskCluster, tmp_path: Path, s3_store_url: str, s3_storage_options: dict
) -> None:
    archive = tmp_path / "archive"
    first = datetime.date(2026, 3, 1)
    dates = [str(first + datetime.timedelta(days=i)) for i in range(4)]
    expected = {}
    for index, day in enumerate(dates):
        for name, frames in _recordings(archive / day, 3, seed=index).items():
            expected[f"{day}_{name}"] = frames
    params = BackfillParams(
        archive=str(archive),
        store=_store(s3_store_url, s3_storage_options),
        predict=False,
        concurrency=2,
        dask_address=dask_cluster.address,
    )
    with dask_cluster.client() as client, get_task_stream(client) as stream:
        state = backfill(params, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, BackfillReport)
    assert [r.status for r in report.rows] == ["done"] * 4
    workers = _task_workers(stream.data)
    assert len(workers) == 4 and len(set(workers)) == 2
    repo = SequenceRepository(open_store(s3_store_url, params.store.resolved_options()))
    assert repo.ids() == sorted(expected)
    for sequence_id in (f"{dates[0]}_rec-00", f"{dates[3]}_rec-02"):
        np.testing.assert_array_equal(repo.frames(sequence_id)[:], expected[sequence_id])
    rerun = backfill(params, return_state=True).result()
    assert rerun.counts["skipped"] == 4
