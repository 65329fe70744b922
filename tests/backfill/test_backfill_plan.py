"""Listing partitions, markers and the pure planner (no Prefect, no model)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from segflow.backfill import (
    Partition,
    PartitionResult,
    list_partitions,
    marker_key,
    plan_backfill,
    read_markers,
    sequence_id_for,
    update_index,
    write_marker,
)
from segflow.errors import SourceError
from storage import open_store


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_lists_date_folders_in_range_only(tmp_path: Path) -> None:
    for day in ("2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"):
        _touch(tmp_path / day / "cam.npy")
    _touch(tmp_path / "2026-13-01" / "cam.npy")  # not a date
    _touch(tmp_path / "notes" / "cam.npy")
    _touch(tmp_path / "2026-02-01" / ".hidden")
    found = list_partitions(str(tmp_path), "2026-01-31", "2026-02-01")
    assert [p.date for p in found] == ["2026-01-31", "2026-02-01"]
    assert [p.files for p in found] == [1, 1]
    assert [p.date for p in list_partitions(str(tmp_path))] == [
        "2026-01-30",
        "2026-01-31",
        "2026-02-01",
        "2026-02-02",
    ]


def test_identity_changes_with_size_name_or_mtime_not_otherwise(tmp_path: Path) -> None:
    _touch(tmp_path / "2026-01-01" / "sub" / "a.npy", b"abc")

    def identity() -> str:
        return list_partitions(str(tmp_path))[0].identity

    first = identity()
    assert identity() == first
    os.utime(tmp_path / "2026-01-01" / "sub" / "a.npy", ns=(1, 1))
    touched = identity()
    assert touched != first
    _touch(tmp_path / "2026-01-01" / "sub" / "b.npy")
    assert identity() != touched


def test_missing_archive_names_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope"):
        list_partitions(str(tmp_path / "nope"))


def test_lists_an_s3_archive_in_one_listing(
    s3_store_url: str, s3_storage_options: dict[str, Any]
) -> None:
    import fsspec

    fs = fsspec.filesystem("s3", **s3_storage_options)
    for key in ("2026-01-01/cam1.npy", "2026-01-01/cam2.npy", "2026-01-02/cam1.npy", "misc/x.npy"):
        fs.pipe(f"{s3_store_url}/{key}", b"data")
    found = list_partitions(s3_store_url, storage_options=s3_storage_options)
    assert [(p.date, p.files) for p in found] == [("2026-01-01", 2), ("2026-01-02", 1)]
    assert found[0].uri == f"{s3_store_url}/2026-01-01"
    fs.pipe(f"{s3_store_url}/2026-01-02/cam1.npy", b"other")
    again = list_partitions(s3_store_url, "2026-01-02", storage_options=s3_storage_options)
    assert [p.date for p in again] == ["2026-01-02"] and again[0].identity != found[1].identity


def _p(date: str, identity: str = "i") -> Partition:
    return Partition(date, f"arc/{date}", identity, 1)


DONE = {"identity": "i", "status": "done"}


@pytest.mark.parametrize(
    ("marker", "force", "action", "reason"),
    [
        (None, False, "run", "new"),  # never run
        (DONE, False, "skip", "done"),  # done with the same files
        ({**DONE, "identity": "other"}, False, "run", "files changed"),  # files changed since
        ({**DONE, "status": "failed"}, False, "run", "previous run failed"),  # failed last time
        (DONE, True, "run", "forced"),  # --force redoes done days
    ],
)
def test_plan_decisions(
    marker: dict[str, str] | None, force: bool, action: str, reason: str
) -> None:
    markers = {} if marker is None else {"2026-01-01": marker}
    (item,) = plan_backfill([_p("2026-01-01")], markers, force=force).items
    assert (item.action, item.reason) == (action, reason)


def test_plan_is_in_date_order_and_flags_out_of_order_days() -> None:
    parts = [_p("2026-01-03"), _p("2026-01-01", "changed"), _p("2026-01-02")]
    markers = {d: DONE for d in ("2026-01-01", "2026-01-02", "2026-01-03")}
    plan = plan_backfill(parts, markers, ordered=True)
    assert [i.partition.date for i in plan.items] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [p.date for p in plan.todo] == ["2026-01-01"] and plan.skipped == 2
    assert "out of order" in plan.items[0].reason
    assert "out of order" not in plan_backfill(parts, markers).items[0].reason


def _result(date: str, status: str = "done", identity: str = "i") -> PartitionResult:
    return PartitionResult(date, identity, status)  # type: ignore[arg-type]


def test_markers_come_from_the_index_and_from_markers_it_lacks(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for date in ("2026-01-01", "2026-01-02"):
        write_marker(store, "m", _result(date))
    update_index(store, "m", add=[_result("2026-01-01"), _result("2026-01-02")])
    write_marker(store, "m", _result("2026-01-03", "failed"))  # a crash before the index update
    assert read_markers(store, "m") == {
        "2026-01-01": DONE,
        "2026-01-02": DONE,
        "2026-01-03": {"identity": "i", "status": "failed"},
    }
    store.delete(marker_key("m", "2026-01-02"))  # deleting a marker redoes that day
    assert set(read_markers(store, "m")) == {"2026-01-01", "2026-01-03"}
    update_index(store, "m", drop=["2026-01-01"])
    index = json.loads(store.read_bytes("backfills/m/_index.json"))["partitions"]
    assert set(index) == {"2026-01-02"}
    assert read_markers(store, "other") == {}


@pytest.mark.parametrize(
    ("name", "ordered", "expected"),
    [
        ("arc/2026-01-31/cam1.mp4", True, "cam1"),  # the camera's sequence across days
        ("arc/2026-01-31/cam1_2026-01-31.mp4", True, "cam1"),  # the date in the name is dropped
        ("arc/2026-01-31/20260131-cam1.npy", True, "cam1"),  # compact dates too
        ("arc/2026-01-31/cam1.mp4", False, "2026-01-31_cam1"),  # one sequence per day
        ("s3://b/arc/2026-01-31/frames/", False, "2026-01-31_frames"),  # an image folder
    ],
)
def test_sequence_ids(name: str, ordered: bool, expected: str) -> None:
    assert sequence_id_for(name, "2026-01-31", ordered=ordered) == expected
