"""Groups and arrays written from documents (storage.layout), Store.write_many: both stores."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import zarr

from segflow.errors import StoreError
from storage.base import Store
from storage.layout import (
    array_document,
    built_in_memory,
    group_document,
    metadata_from,
    read_group,
    write_group,
    write_group_attribute,
)


@pytest.fixture
def store(local_or_s3_store: Store) -> Store:
    return local_or_s3_store


@pytest.mark.parametrize(
    "count",
    [
        0,  # nothing to do
        1,  # one object: a plain write
        7,  # several: concurrent PUTs on S3
    ],
)
def test_write_many_stores_every_object(store: Store, count: int) -> None:
    rng = np.random.default_rng(count)
    objects = {f"many/{i}/obj": rng.bytes(int(rng.integers(0, 5000))) for i in range(count)}
    store.write_many(objects)
    assert {key: store.read_bytes(key) for key in objects} == objects
    store.write_many({key: b"new" for key in objects})  # overwrites
    assert all(store.read_bytes(key) == b"new" for key in objects)


def test_read_group_of_a_missing_path_is_none(store: Store) -> None:
    assert read_group(store, store.zarr_store(), "nowhere") is None


def test_read_group_refuses_an_array(store: Store) -> None:
    zarr.create_array(store.zarr_store(), name="arr", shape=(3,), dtype="uint8")
    with pytest.raises(StoreError, match=r"Expected Zarr v3 group metadata at 'arr/zarr\.json'"):
        read_group(store, store.zarr_store(), "arr")


def test_written_group_reads_back_in_plain_zarr(store: Store) -> None:
    template = zarr.create_array(
        zarr.storage.MemoryStore(), shape=(0, 4), chunks=(8, 4), dtype="float32"
    )
    group = write_group(
        store, store.zarr_store(), "g/h", {"segflow": {"n": 1}}, {"rows": template.metadata}
    )
    assert group.attrs["segflow"] == {"n": 1}
    opened = zarr.open_group(store.zarr_store(read_only=True), path="g/h", mode="r")
    assert opened.attrs.asdict() == {"segflow": {"n": 1}}
    rows = opened["rows"]
    assert isinstance(rows, zarr.Array)
    assert rows.shape == (0, 4) and rows.chunks == (8, 4)
    same = read_group(store, store.zarr_store(), "g/h")
    assert same is not None and same.attrs.asdict() == group.attrs.asdict()


def test_documents_are_zarrs_own() -> None:
    stored: dict[str, Any] = {}
    group = zarr.create_group(zarr.storage.MemoryStore(stored), attributes={"a": [1, 2]})
    assert group_document({"a": [1, 2]}) == stored["zarr.json"].to_bytes()
    array = group.create_array("x", shape=(5, 2), chunks=(2, 2), dtype="int16", fill_value=3)
    assert array_document(array.metadata) == stored["x/zarr.json"].to_bytes()
    assert metadata_from(array_document(array.metadata)) == array.metadata


def test_built_in_memory_holds_chunks_and_documents() -> None:
    values = np.random.default_rng(0).normal(size=(5,)).astype("float32")

    def build(group: zarr.Group) -> None:
        group.create_array("deep/x", shape=(5,), chunks=(5,), dtype="float32")[:] = values

    objects = built_in_memory(build)
    assert sorted(objects) == ["deep/x/c/0", "deep/x/zarr.json", "deep/zarr.json"]
    assert json.loads(objects["deep/x/zarr.json"])["shape"] == [5]


def test_group_attribute_keeps_the_others(store: Store) -> None:
    zarr.create_group(store.zarr_store(), path="seq", attributes={"user": "note", "segflow": 1})
    write_group_attribute(store, "seq", "segflow", {"length": 3})
    opened = zarr.open_group(store.zarr_store(read_only=True), path="seq", mode="r")
    assert opened.attrs.asdict() == {"user": "note", "segflow": {"length": 3}}
    write_group_attribute(store, "new", "segflow", 2)  # created, as zarr's mode "a" would
    assert zarr.open_group(store.zarr_store(), path="new", mode="r").attrs["segflow"] == 2
    zarr.create_array(store.zarr_store(), name="arr", shape=(1,), dtype="uint8")
    with pytest.raises(StoreError, match="Expected Zarr v3 group metadata"):
        write_group_attribute(store, "arr", "segflow", 1)
