"""Ordered backfills by recording: the lane plan (pure), the day fold (pure), and the executor
running lanes side by side while each keeps its days in date order."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from segflow.backfill import Partition, Submitter, execute_backfill, list_partitions
from segflow.backfill.lanes import Lane, LaneResult, LaneStep, fold_days, plan_lanes, run_lane
from segflow.config import BackfillParams, StoreConfig
from segflow.errors import ConfigError
from segflow.ingest import IngestResult
from storage import open_store
from storage.sequences import SequenceRepository

D1, D2, D3 = "2026-02-01", "2026-02-02", "2026-02-03"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, []),  # nothing to do
        ({D1: ["a/cam1.npy"]}, [("cam1", [D1])]),
        # dates given out of order: each lane still in date order
        ({D2: ["a/cam1.npy"], D1: ["b/cam1.npy"]}, [("cam1", [D1, D2])]),
        # a camera missing on a day: its lane skips that day; lanes sorted by id
        (
            {D1: ["x/cam2.npy", "x/cam1.npy"], D2: ["y/cam2.npy"], D3: ["z/cam1.npy"]},
            [("cam1", [D1, D3]), ("cam2", [D1, D2])],
        ),
        # the date in the file name is not part of the recording's id
        ({D1: [f"a/cam1_{D1}.npy"], D2: [f"a/cam1_{D2}.npy"]}, [("cam1", [D1, D2])]),
    ],
)
def test_plan_lanes(files: dict[str, list[str]], expected: list) -> None:
    lanes = plan_lanes(files)
    assert [(lane.sequence_id, [s.date for s in lane.steps]) for lane in lanes] == expected


def test_two_files_of_one_day_for_one_recording_are_refused() -> None:
    with pytest.raises(ConfigError, match="would both become sequence 'cam1'"):
        plan_lanes({D1: [f"a/cam1_{D1}.npy", "a/cam1.npy"]})


def _result(uri: str, sid: str, status: str = "appended", frames: int = 5) -> IngestResult:
    return IngestResult(uri, sid, status, frames=frames)  # type: ignore[arg-type]


def test_fold_days_per_partition() -> None:
    days = [Partition(d, d, f"id-{d}", 2) for d in (D1, D2, D3)]
    lanes = plan_lanes(
        {D1: ["cam1.npy", "cam2.npy"], D2: ["cam1.npy", "cam2.npy"], D3: ["cam2.npy"]}
    )
    ran = [
        LaneResult("cam1", ((D1, _result("c1", "cam1")), (D2, _result("c1", "cam1", "failed")))),
        LaneResult("cam2", tuple((d, _result("c2", "cam2", frames=3)) for d in (D1, D2, D3))),
    ]
    outcomes = fold_days(days, lanes, ran)
    assert [(o.date, o.status) for o in outcomes] == [
        (D1, "landed"),
        (D2, "failed"),
        (D3, "landed"),
    ]
    assert outcomes[0].sequences == ("cam1", "cam2") and outcomes[0].frames == 8
    # cam1 stopped before a day it has: that day waits
    short = [ran[0], LaneResult("cam2", ((D1, _result("c2", "cam2", "failed")),))]
    assert [o.status for o in fold_days(days, lanes, short)] == ["failed", "failed", "incomplete"]


def _archive(root: Path, *, broken: tuple[str, str] | None = None) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    written: dict[str, list[np.ndarray]] = {}
    for day in (D1, D2, D3):
        (root / day).mkdir(parents=True)
        for camera in ("cam1", "cam2", "cam3"):
            frames = rng.normal(size=(int(rng.integers(3, 12)), 4)).astype("float32")
            if (day, camera) == broken:
                frames[1, 1] = np.inf  # refused (NaN is a missing value)
            np.save(root / day / f"{camera}.npy", frames)
            written.setdefault(camera, []).append(frames)
    return written


def test_lanes_keep_day_order_and_run_side_by_side(tmp_path: Path) -> None:
    written = _archive(tmp_path / "archive", broken=(D2, "cam2"))
    params = BackfillParams(
        archive=str(tmp_path / "archive"),
        store=StoreConfig(url=str(tmp_path / "store")),
        ordered=True,
        predict=False,
        concurrency=2,
    )
    lock, running, most = threading.Lock(), [0], [0]

    def counted(lane: Lane) -> LaneResult:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)  # long enough for the other lane to start
        try:
            return run_lane(lane, params)
        finally:
            with lock:
                running[0] -= 1

    todo = list_partitions(params.archive, None, None, None)
    with ThreadPoolExecutor(4) as pool:
        submitter = Submitter(
            submit=lambda p: pytest.fail("ordered lanes never submit whole days"),
            as_completed=lambda futures: futures,
            submit_lane=lambda lane: pool.submit(counted, lane),
        )
        results = execute_backfill(todo, params, submitter)
    assert most[0] == 2, "two recordings at once, never more than the concurrency"
    assert [(r.partition, r.status) for r in results] == [(D1, "done"), (D2, "failed")]
    assert "cam2.npy" in results[1].message and "NaN" in results[1].message
    repo = SequenceRepository(open_store(tmp_path / "store"))
    for camera in ("cam1", "cam3"):  # every day, in date order
        np.testing.assert_array_equal(repo.frames(camera)[:], np.concatenate(written[camera]))
        sources = [s["uri"] for s in repo.meta(camera).sources]
        assert [Path(u).parent.name for u in sources] == [D1, D2, D3]
    # cam2 waits at D2: its committed frames are D1's (readers go by the recorded length)
    length = repo.meta("cam2").length
    assert length == len(written["cam2"][0])
    np.testing.assert_array_equal(
        repo.frames("cam2", require_complete=False)[:length], written["cam2"][0]
    )
    assert [s.date for s in plan_lanes({D1: ["cam1.npy"]})[0].steps] == [D1]
    assert LaneStep(D1, "u") == LaneStep(D1, "u")
