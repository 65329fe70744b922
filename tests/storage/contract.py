"""The contract every :class:`storage.base.Store` passes.

A store's test module subclasses :class:`StoreContract` and overrides the ``store`` fixture
with a fresh, empty store::

    class TestLocalStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return LocalStore(tmp_path / "root")
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from segflow.errors import ConfigError, KeyNotFoundError, SegflowError
from storage.base import Store
from storage.sequences import SequenceMeta, SequenceRepository

INVALID_KEYS = [
    "../x",  # escapes the root
    "/abs",  # absolute
    "a//b",  # empty part
    "a/./b",  # '.' part
    "",  # the root itself is not an object
]


def _write_all(store: Store, keys: list[str]) -> None:
    for key in keys:
        store.write_bytes(key, key.encode())


class StoreContract:
    """Tests shared by every store implementation (not collected: no ``Test`` prefix)."""

    @pytest.fixture
    def store(self) -> Store:
        """A fresh, empty store; each implementation's test class overrides this."""
        raise NotImplementedError

    # -- objects ---------------------------------------------------------------------------

    def test_write_then_read_roundtrips(self, store: Store) -> None:
        payload = bytes(range(256)) * 3
        store.write_bytes("a/b/c.bin", payload)
        assert store.read_bytes("a/b/c.bin") == payload

    def test_write_chunk_stores_the_parts_concatenated(self, store: Store) -> None:
        parts = [b"ab", memoryview(b"cd"), np.array([1, 2], dtype=np.uint8)]
        store.write_chunk("arr/c.0.0", parts)
        assert store.read_bytes("arr/c.0.0") == b"abcd\x01\x02"
        store.write_chunk("arr/c.0.0", [b"new"])
        assert store.read_bytes("arr/c.0.0") == b"new"
        assert store.list("arr") == ["arr/c.0.0"]

    def test_empty_object_roundtrips(self, store: Store) -> None:
        store.write_bytes("empty", b"")
        assert store.read_bytes("empty") == b""
        assert store.exists("empty")

    def test_write_overwrites(self, store: Store) -> None:
        store.write_bytes("k", b"old")
        store.write_bytes("k", b"new")
        assert store.read_bytes("k") == b"new"

    def test_missing_key_raises_key_not_found(self, store: Store) -> None:
        with pytest.raises(KeyNotFoundError, match="nothing/here") as info:
            store.read_bytes("nothing/here")
        # Callers may catch the specific error, a plain KeyError or any segflow error.
        assert isinstance(info.value, KeyError)
        assert isinstance(info.value, SegflowError)

    def test_reading_a_prefix_is_key_not_found(self, store: Store) -> None:
        store.write_bytes("dir/file", b"x")
        with pytest.raises(KeyNotFoundError):
            store.read_bytes("dir")

    def test_exists(self, store: Store) -> None:
        assert not store.exists("k")
        store.write_bytes("d/k", b"x")
        assert store.exists("d/k")
        assert not store.exists("d")  # a prefix is not an object
        store.delete("d/k")
        assert not store.exists("d/k")

    # -- listing ---------------------------------------------------------------------------

    def test_list_empty_store(self, store: Store) -> None:
        assert store.list() == []
        assert store.list("nothing") == []

    def test_list_is_recursive_sorted_and_relative(self, store: Store) -> None:
        keys = ["b", "a/2", "a/1/x", "c/d/e/f", "a/10"]
        _write_all(store, keys)
        assert store.list() == sorted(keys)

    def test_list_prefix_matches_whole_path_parts(self, store: Store) -> None:
        _write_all(store, ["a/1", "a/2/3", "ab/4", "a.txt"])
        assert store.list("a") == ["a/1", "a/2/3"]  # not 'ab/4' nor 'a.txt'
        assert store.list("a/2") == ["a/2/3"]

    def test_list_of_an_object_key_returns_it(self, store: Store) -> None:
        store.write_bytes("a/b", b"x")
        assert store.list("a/b") == ["a/b"]

    # -- deleting --------------------------------------------------------------------------

    def test_delete(self, store: Store) -> None:
        _write_all(store, ["k", "k2"])
        store.delete("k")
        assert store.list() == ["k2"]

    def test_delete_missing_key_is_ok(self, store: Store) -> None:
        store.delete("never/written")
        assert store.list() == []

    def test_delete_prefix(self, store: Store) -> None:
        _write_all(store, ["p/1", "p/q/2", "pq/3", "other"])
        store.delete_prefix("p")
        assert store.list() == ["other", "pq/3"]
        store.delete_prefix("p")  # already gone: not an error
        assert store.list() == ["other", "pq/3"]

    # -- exclusive creation ----------------------------------------------------------------

    def test_create_exclusive_only_once(self, store: Store) -> None:
        assert store.create_exclusive("lock", b"first") is True
        assert store.create_exclusive("lock", b"second") is False
        assert store.read_bytes("lock") == b"first"

    def test_create_exclusive_refuses_existing_object(self, store: Store) -> None:
        store.write_bytes("lock", b"written")
        assert store.create_exclusive("lock", b"mine") is False
        assert store.read_bytes("lock") == b"written"

    def test_create_exclusive_race_has_one_winner(self, store: Store) -> None:
        threads = 8
        start = threading.Barrier(threads)

        def attempt(i: int) -> bool:
            start.wait()
            return store.create_exclusive("contended", f"writer-{i}".encode())

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(attempt, range(threads)))
        assert results.count(True) == 1
        winner = results.index(True)
        assert store.read_bytes("contended") == f"writer-{winner}".encode()

    # -- keys ------------------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_are_refused(self, store: Store, key: str) -> None:
        operations = {
            "read_bytes": lambda: store.read_bytes(key),
            "write_bytes": lambda: store.write_bytes(key, b"x"),
            "create_exclusive": lambda: store.create_exclusive(key, b"x"),
            "exists": lambda: store.exists(key),
            "delete": lambda: store.delete(key),
            "delete_prefix": lambda: store.delete_prefix(key),
            "move_prefix from": lambda: store.move_prefix(key, "x"),
            "move_prefix to": lambda: store.move_prefix("x", key),
        }
        for name, operation in operations.items():
            with pytest.raises(ConfigError, match="Invalid store key"):
                operation()
                pytest.fail(f"{name}({key!r}) did not raise")
        assert store.list() == []

    @pytest.mark.parametrize("prefix", [k for k in INVALID_KEYS if k])
    def test_invalid_list_prefix_is_refused(self, store: Store, prefix: str) -> None:
        with pytest.raises(ConfigError):
            store.list(prefix)

    # -- moving ----------------------------------------------------------------------------

    def test_move_prefix_replaces_destination(self, store: Store) -> None:
        _write_all(store, ["src/zarr.json", "src/a/zarr.json", "src/a/c/0", "src/b"])
        store.write_bytes("dst/stale", b"old")
        store.write_bytes("dstx/keep", b"neighbour")
        store.move_prefix("src", "dst")
        assert store.list("dst") == ["dst/a/c/0", "dst/a/zarr.json", "dst/b", "dst/zarr.json"]
        assert store.read_bytes("dst/a/c/0") == b"src/a/c/0"
        assert store.list("src") == []
        assert store.read_bytes("dstx/keep") == b"neighbour"

    def test_move_prefix_to_new_nested_destination(self, store: Store) -> None:
        _write_all(store, ["staging/s1/x", "staging/s1/zarr.json"])
        store.move_prefix("staging/s1", "sequences/s1")
        assert store.list() == ["sequences/s1/x", "sequences/s1/zarr.json"]

    def test_move_missing_prefix_keeps_destination(self, store: Store) -> None:
        store.write_bytes("dst/keep", b"x")
        store.move_prefix("missing", "dst")
        assert store.list() == ["dst/keep"]

    # -- zarr ------------------------------------------------------------------------------

    def _write_sequence(self, store: Store, data: np.ndarray) -> SequenceRepository:
        repo = SequenceRepository(store)
        meta = SequenceMeta(segment_length=4, source_uri="synthetic")
        group = repo.create("seq-1", frame_shape=data.shape[1:], dtype=data.dtype, meta=meta)
        frames = group["frames"]
        frames.resize(data.shape)
        frames[:] = data
        repo.write_meta("seq-1", meta.replace(length=len(data), complete=True))
        return repo

    def test_zarr_sequence_roundtrip(self, store: Store) -> None:
        data = np.random.default_rng(0).integers(0, 255, (10, 6, 5, 3), dtype=np.uint8)
        repo = self._write_sequence(store, data)
        np.testing.assert_array_equal(repo.frames("seq-1")[:], data)
        info = repo.info("seq-1")
        assert (info.length, info.frame_shape, info.chunks) == (10, (6, 5, 3), (4, 6, 5, 3))
        assert info.dimension_names == ("time", "height", "width", "channel")
        assert info.complete
        # A new repository over the same store sees the same data (nothing held in memory).
        assert SequenceRepository(store).ids() == ["seq-1"]
        np.testing.assert_array_equal(SequenceRepository(store).frames("seq-1")[8:], data[8:])

    def test_zarr_corrupted_chunk_is_detected(self, store: Store) -> None:
        data = np.random.default_rng(0).integers(0, 255, (10, 6, 5, 3), dtype=np.uint8)
        repo = self._write_sequence(store, data)
        chunk = "sequences/seq-1/frames/c.1.0.0.0"
        assert chunk in store.list("sequences/seq-1/frames")
        raw = bytearray(store.read_bytes(chunk))
        raw[len(raw) // 2] ^= 0xFF  # one flipped byte, as from bit rot
        store.write_bytes(chunk, bytes(raw))
        np.testing.assert_array_equal(repo.frames("seq-1")[:4], data[:4])  # other chunks fine
        with pytest.raises(ValueError, match="checksum"):
            repo.frames("seq-1")[4:8]

    def test_zarr_promote_staged_sequence(self, store: Store) -> None:
        data = np.random.default_rng(0).integers(0, 255, (5, 4), dtype=np.int16)
        repo = SequenceRepository(store)
        meta = SequenceMeta(segment_length=2)
        for staging, values in ((False, data), (True, data + 1)):
            group = repo.create(
                "seq-2", frame_shape=(4,), dtype="int16", meta=meta, staging=staging
            )
            group["frames"].resize(values.shape)
            group["frames"][:] = values
            repo.write_meta("seq-2", meta.replace(length=5, complete=True), staging=staging)
        repo.promote("seq-2")
        np.testing.assert_array_equal(repo.frames("seq-2")[:], data + 1)
        assert not repo.exists("seq-2", staging=True)
