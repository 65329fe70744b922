"""Small sources are written whole (one pass, group metadata last) with the same guarantees.

The whole-source path must store exactly what the block-by-block writer stores (key by key),
skip unchanged sequences, replace changed ones safely, leave nothing behind on bad input or a
crash before the completion marker, and cost one flushed write per sequence.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from segflow.config import IngestParams, StoreConfig, WriteConfig
from segflow.ingest import ingest_source
from segflow.ingest import run as ingest_run
from segflow.ingest.batch import ingest_many
from segflow.synth import synth_series_csv
from storage import open_store
from storage.local import LocalStore
from storage.sequences import SequenceRepository


def recording(rng: np.random.Generator, dtype: str = "float32") -> np.ndarray:
    """A noisy recording of a random length (not a multiple of the segment, mostly)."""
    n = int(rng.integers(1, 90))
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=(n, 7)).astype(dtype)
    return rng.integers(0, 255, size=(n, 5, 4, 3), dtype=dtype)


def store_objects(root: Path) -> dict[str, bytes]:
    """Every stored object under ``sequences/``, metadata parsed so key order does not matter."""
    objects = {}
    for path in sorted((root / "sequences").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            key = str(path.relative_to(root))
            objects[key] = json.loads(data) if path.name == "zarr.json" else data
    return objects


def ingest_both_ways(tmp_path: Path, uri: str, monkeypatch, **kw) -> tuple[dict, dict]:
    """Ingest ``uri`` whole and block by block (into two stores); return both stores' objects."""
    config = WriteConfig(segment_length=8)
    whole, blocks = tmp_path / "whole", tmp_path / "blocks"
    result = ingest_source(uri, SequenceRepository(open_store(whole)), write_config=config, **kw)
    monkeypatch.setattr(ingest_run, "WHOLE_BYTES", -1)  # every source takes the writer
    ingest_source(uri, SequenceRepository(open_store(blocks)), write_config=config, **kw)
    monkeypatch.undo()
    assert result.status == "written"
    a, b = store_objects(whole), store_objects(blocks)
    for meta in (a, b):  # the uri's own path differs only through the store location
        meta_key = next(k for k in meta if k.count("/") == 2 and k.endswith("zarr.json"))
        meta[meta_key]["attributes"]["segflow"]["sources"][0].pop("record")
    return a, b


@pytest.mark.parametrize("dtype", ["float32", "uint8", ">f8"])  # compressed or not, byte order
def test_whole_write_stores_what_the_block_writer_stores(tmp_path, monkeypatch, dtype) -> None:
    rng = np.random.default_rng(7)
    for index in range(4):  # variable lengths: partial last chunks, a single frame
        data = recording(rng, dtype)
        uri = str(tmp_path / f"rec-{index}.npy")
        np.save(uri, data)
        whole, blocks = ingest_both_ways(tmp_path / str(index), uri, monkeypatch)
        assert whole == blocks
        stored = zarr.open_group(str(tmp_path / str(index) / "whole"), mode="r")
        np.testing.assert_array_equal(stored[f"sequences/rec-{index}/frames"][:], data)


def test_whole_write_of_labels_and_timestamps(tmp_path, monkeypatch) -> None:
    (csv,) = synth_series_csv(tmp_path, count=1, rows=37, features=3, seed=3)  # stamps, labels
    whole, blocks = ingest_both_ways(tmp_path / "csv", csv, monkeypatch)
    assert whole == blocks
    assert any(k.endswith("timestamps/zarr.json") for k in whole)
    assert any(k.endswith("labels/zarr.json") for k in whole)

    data = recording(np.random.default_rng(1))
    uri = str(tmp_path / "tagged.npy")
    np.save(uri, data)
    np.save(tmp_path / "one.npy", np.array([3], dtype="int64"))  # one label for the sequence
    whole, blocks = ingest_both_ways(
        tmp_path / "tagged", uri, monkeypatch, labels_path=str(tmp_path / "one.npy")
    )
    assert whole == blocks


def params_for(tmp_path: Path, sources: list[str]) -> IngestParams:
    return IngestParams(sources=sources, store=StoreConfig(url=str(tmp_path / "store")))


def many_sources(tmp_path: Path, count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    (tmp_path / "src").mkdir(exist_ok=True)
    pairs = []
    for index in range(count):
        uri = str(tmp_path / "src" / f"rec-{index:03d}.npy")
        np.save(uri, recording(rng))
        pairs.append((uri, f"rec-{index:03d}"))
    return pairs


def test_batch_keeps_order_and_isolates_a_bad_source(tmp_path) -> None:
    pairs = many_sources(tmp_path, 24)
    bad = np.random.default_rng(2).normal(size=(20, 7)).astype("float32")
    bad[11, 3] = -np.inf  # NaN would be a missing value, stored
    np.save(pairs[5][0], bad)
    params = params_for(tmp_path, [str(tmp_path / "src")])
    results = ingest_many(pairs, params, threads=3)
    assert [r.sequence_id for r in results] == [s for _, s in pairs]
    assert [r.status for r in results].count("failed") == 1
    assert results[5].status == "failed" and "frame 11" in results[5].message
    repo = SequenceRepository(params.store.open())
    assert "rec-005" not in repo.ids() and len(repo.ids()) == 23
    for uri, sequence_id in pairs[:3]:
        np.testing.assert_array_equal(repo.frames(sequence_id)[:], np.load(uri))
    again = ingest_many(pairs, params, threads=3)
    assert {r.status for i, r in enumerate(again) if i != 5} == {"skipped"}


def test_changed_source_replaced_and_bad_change_leaves_data_untouched(tmp_path) -> None:
    pairs = many_sources(tmp_path, 3)
    params = params_for(tmp_path, [str(tmp_path / "src")])
    ingest_many(pairs, params)
    uri, sequence_id = pairs[1]
    repo = SequenceRepository(params.store.open())
    before = repo.frames(sequence_id)[:]

    broken = np.random.default_rng(4).normal(size=(30, 7)).astype("float32")
    broken[29, 0] = np.inf
    np.save(uri, broken)
    (failed,) = ingest_many([(uri, sequence_id)], params)
    assert failed.status == "failed" and "contains inf values" in failed.message
    np.testing.assert_array_equal(repo.frames(sequence_id)[:], before)
    assert not repo.exists(sequence_id, staging=True)

    changed = np.random.default_rng(5).normal(size=(41, 7)).astype("float32")
    np.save(uri, changed)
    (replaced,) = ingest_many([(uri, sequence_id)], params)
    assert replaced.status == "written" and replaced.message == "source changed"
    np.testing.assert_array_equal(repo.frames(sequence_id)[:], changed)
    assert repo.meta(sequence_id).length == 41 and repo.meta(sequence_id).complete


def test_crash_before_the_completion_marker_leaves_no_sequence(tmp_path, monkeypatch) -> None:
    (pair,) = many_sources(tmp_path, 1)
    params = params_for(tmp_path, [pair[0]])
    original = LocalStore.write_bytes

    def crash_on_group(self: LocalStore, key: str, data: bytes) -> None:
        if key.startswith("sequences/") and key.count("/") == 2:
            raise KeyboardInterrupt("killed")  # not a segflow error: nothing catches it
        original(self, key, data)

    monkeypatch.setattr(LocalStore, "write_bytes", crash_on_group)
    with pytest.raises(KeyboardInterrupt):
        ingest_many([pair], params)
    monkeypatch.undo()
    repo = SequenceRepository(params.store.open())
    assert repo.ids() == []  # chunks without a group are invisible
    (result,) = ingest_many([pair], params)
    assert result.status == "written" and repo.require_complete(pair[1]).complete
    np.testing.assert_array_equal(repo.frames(pair[1])[:], np.load(pair[0]))


def test_one_flushed_write_per_small_sequence(tmp_path, monkeypatch) -> None:
    pairs = many_sources(tmp_path, 10)
    params = params_for(tmp_path, [str(tmp_path / "src")])
    ingest_many(pairs[:1], params)  # the store's root groups: once per store
    calls: list[str] = []
    for name in ("write_bytes", "read_bytes", "exists", "list", "delete_prefix"):
        original = getattr(LocalStore, name)

        def counted(self, *args, _original=original, _name=name, **kw):
            calls.append(_name)
            return _original(self, *args, **kw)

        monkeypatch.setattr(LocalStore, name, counted)
    ingest_many(pairs[1:], params, threads=1)
    per_sequence = {name: calls.count(name) / 9 for name in set(calls)}
    assert per_sequence["write_bytes"] == 1  # the completion marker, flushed
    assert sum(per_sequence.values()) <= 5, per_sequence
