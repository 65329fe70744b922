"""Tests of the predictions layout: arrays, attributes, final state and the per-tag lock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import zarr

from segflow.errors import InvalidIdError, KeyNotFoundError, LockedError
from storage.local import LocalStore
from storage.predictions import PredictionMeta, PredictionRepository, prediction_path

META = PredictionMeta(
    checkpoint="ckpt-3",
    config_hash="c" * 64,
    weights_digest="w" * 16,
    flow_run_id="run-1",
    created="2026-01-01T00:00:00+00:00",
    source_fingerprint="blake2b:abc:size=1",
    sources=({"uri": "a.npy", "fingerprint": "f1", "start": 0, "stop": 10},),
    segment_length=4,
    head="many_to_many",
    outputs=2,
)


@pytest.fixture
def repo(tmp_path) -> PredictionRepository:
    return PredictionRepository(LocalStore(tmp_path / "store"))


def test_create_lays_out_outputs_and_attrs(repo: PredictionRepository) -> None:
    array = repo.create("tag-1", "seq-a", rows=10, meta=META.replace(length=7, complete=True))
    assert array.shape == (10, 2)
    assert array.chunks == (4, 2)
    assert array.dtype == np.float32
    assert tuple(array.metadata.dimension_names) == ("time", "output")
    codecs = [type(c).__name__ for c in array.metadata.codecs]
    assert any("Crc32c" in name for name in codecs), codecs
    raw = json.loads(repo.store.read_bytes("predictions/tag-1/seq-a/zarr.json"))
    attrs = raw["attributes"]["segflow"]
    # Fresh predictions are never complete, whatever meta says.
    assert attrs["length"] == 0 and attrs["complete"] is False
    for name in (
        "checkpoint",
        "config_hash",
        "flow_run_id",
        "created",
        "source_fingerprint",
        "segment_length",
    ):
        assert attrs[name] == getattr(META, name), name
    assert repo.ids("tag-1") == ["seq-a"]
    assert repo.tags() == ["tag-1"]


def test_many_to_one_has_one_row(repo: PredictionRepository) -> None:
    array = repo.create("t", "s", rows=50, meta=META.replace(head="many_to_one", outputs=3))
    assert array.shape == (1, 3) and array.chunks == (1, 3)


def test_rows_state_and_completion_round_trip(repo: PredictionRepository) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(10, 2)).astype(np.float32)
    repo.create("t", "s", rows=10, meta=META)
    repo.outputs("t", "s")[:10] = rows
    state = {
        "lstm_0/h": rng.normal(size=5),
        "lstm_0/c": rng.normal(size=5),
        "lstm_1/h": rng.normal(size=3),
        "lstm_1/c": rng.normal(size=3),
    }
    assert not repo.meta("t", "s").complete
    repo.finish("t", "s", repo.meta("t", "s").replace(length=10), state)
    meta = repo.meta("t", "s")
    assert meta.complete and meta.length == 10
    np.testing.assert_array_equal(repo.read("t", "s"), rows)
    loaded = repo.read_state("t", "s")
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value.astype(np.float32))
    assert repo.store.exists("predictions/t/s/state/lstm_0.h/zarr.json")


def test_resize_keeps_rows_and_read_stops_at_length(repo: PredictionRepository) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    repo.create("t", "s", rows=6, meta=META)
    repo.outputs("t", "s")[:6] = rows
    repo.write_meta("t", "s", repo.meta("t", "s").replace(length=6))
    repo.resize("t", "s", 9)
    assert repo.outputs("t", "s").shape == (9, 2)
    np.testing.assert_array_equal(repo.read("t", "s"), rows)


def test_missing_predictions(repo: PredictionRepository) -> None:
    assert repo.find_meta("t", "nope") is None
    with pytest.raises(KeyNotFoundError, match="nope"):
        repo.meta("t", "nope")
    with pytest.raises(KeyNotFoundError, match="nope"):
        repo.outputs("t", "nope")


@pytest.mark.parametrize(
    "tag",
    [
        "../escape",  # path traversal
        "a/b",  # nested path
        ".hidden",  # leading dot
        "",  # empty
    ],
)
def test_bad_model_tag_is_refused(repo: PredictionRepository, tag: str) -> None:
    with pytest.raises(InvalidIdError, match="model tag"):
        repo.create(tag, "s", rows=1, meta=META)
    with pytest.raises(InvalidIdError, match="model tag"):
        prediction_path(tag)
    assert repo.store.list() == []


def test_lock_refuses_second_holder_and_releases(repo: PredictionRepository) -> None:
    with repo.lock("t", "run-A") as record:
        assert repo.read_lock("t")["owner"] == "run-A"
        assert record["host"] == socket.gethostname()
        with pytest.raises(LockedError, match="run-A") as info, repo.lock("t", "run-B"):
            pass  # pragma: no cover
        assert "break_lock" in str(info.value)
        # A refused run leaves the holder's lock alone.
        assert repo.read_lock("t")["owner"] == "run-A"
        # Other tags are independent.
        with repo.lock("other", "run-B"):
            pass
    assert repo.read_lock("t") is None
    with repo.lock("t", "run-B"):
        assert repo.read_lock("t")["owner"] == "run-B"


def test_lock_is_released_on_error(repo: PredictionRepository) -> None:
    with pytest.raises(RuntimeError), repo.lock("t", "run-A"):
        raise RuntimeError("boom")
    assert repo.read_lock("t") is None


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _plant_lock(repo: PredictionRepository, **fields: object) -> None:
    record = {
        "owner": "old-run",
        "pid": 1,
        "host": socket.gethostname(),
        "time": "then",
        "token": "x",
        **fields,
    }
    repo.store.write_bytes("predictions/t/.lock", json.dumps(record).encode())


def test_stale_lock_of_dead_local_process_is_broken(repo: PredictionRepository) -> None:
    _plant_lock(repo, pid=_dead_pid())
    with repo.lock("t", "run-B"):
        assert repo.read_lock("t")["owner"] == "run-B"
    assert repo.read_lock("t") is None


def test_lock_of_other_host_needs_break_lock(repo: PredictionRepository) -> None:
    _plant_lock(repo, pid=_dead_pid(), host="elsewhere.example")
    with pytest.raises(LockedError, match=r"elsewhere\.example"), repo.lock("t", "run-B"):
        pass  # pragma: no cover
    with repo.lock("t", "run-B", break_lock=True):
        assert repo.read_lock("t")["owner"] == "run-B"


def test_release_does_not_delete_a_lock_taken_over(repo: PredictionRepository) -> None:
    with repo.lock("t", "run-A"):
        # Someone broke our lock and took it: leaving must not delete theirs.
        _plant_lock(repo, owner="run-C", token="theirs")
    assert repo.read_lock("t")["owner"] == "run-C"


def test_groups_are_browsable_with_zarr(repo: PredictionRepository) -> None:
    repo.create("t", "s", rows=3, meta=META)
    root = zarr.open_group(repo.store.zarr_store(read_only=True), mode="r")
    assert root["predictions/t/s/outputs"].shape == (3, 2)


def test_writers_starting_at_once_share_the_tag_group(tmp_path) -> None:
    # Shards of one tag start together on different workers, each with its own repository;
    # each creates the tag's parent groups. Losing that race must not fail a writer.
    store = LocalStore(tmp_path / "store")
    writers = 8
    for tag in ("t0", "t1", "t2", "t3", "t4"):
        start = threading.Barrier(writers)

        def write(i: int, tag: str = tag, start: threading.Barrier = start) -> None:
            repo = PredictionRepository(store)
            start.wait()
            repo.create(tag, f"seq-{i}", rows=3, meta=META)

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))  # re-raises a writer's error
        assert PredictionRepository(store).ids(tag) == sorted(f"seq-{i}" for i in range(writers))
    root = zarr.open_group(store.zarr_store(read_only=True), mode="r")
    assert sorted(root["predictions"].group_keys()) == ["t0", "t1", "t2", "t3", "t4"]
