"""Zarr groups and small arrays written with few requests: built in memory, stored at once.

Creating a group or an array through zarr costs an existence check and a metadata write per
node, each a round trip on an object store, and zarr's event loop in between. The documents
and chunks do not depend on the store, so they are built here by zarr itself, in memory, and
then stored with :meth:`Store.write_many` (concurrent PUTs on S3). The bytes are exactly
those zarr writes, so stores stay readable by plain zarr.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import zarr
import zarr.storage
from zarr.core.array import AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import AsyncGroup, GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.storage import StorePath

from storage.errors import KeyNotFoundError, StoreError

if TYPE_CHECKING:
    import zarr.abc.store

    from storage.base import Store

__all__ = [
    "array_at",
    "array_document",
    "built_in_memory",
    "group_document",
    "metadata_from",
    "read_group",
    "write_group",
    "write_group_attribute",
]


def group_document(attributes: Mapping[str, Any]) -> bytes:
    """The ``zarr.json`` bytes zarr writes for a group holding ``attributes``.

    >>> json.loads(group_document({"a": 1}))["attributes"]
    {'a': 1}
    """
    metadata = GroupMetadata(attributes=dict(attributes))
    return metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()


def array_document(metadata: ArrayV3Metadata) -> bytes:
    """The ``zarr.json`` bytes zarr writes for an array with ``metadata``."""
    return metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()


def built_in_memory(build: Callable[[zarr.Group], object]) -> dict[str, bytes]:
    """Every object zarr writes when ``build`` runs on an empty in-memory group.

    The group's own ``zarr.json`` is left out: the caller writes its group's metadata itself,
    last, when everything it refers to is stored.

    >>> objects = built_in_memory(lambda g: g.create_array("x", shape=(2,), dtype="uint8"))
    >>> sorted(objects)
    ['x/zarr.json']
    """
    stored: dict[str, Any] = {}
    build(zarr.create_group(zarr.storage.MemoryStore(stored)))
    return {key: value.to_bytes() for key, value in stored.items() if key != "zarr.json"}


def array_at(store: zarr.abc.store.Store, path: str, metadata: ArrayV3Metadata) -> zarr.Array:
    """The array at ``path`` of ``store`` whose metadata is ``metadata``, opened without a read.

    >>> memory = zarr.storage.MemoryStore()
    >>> made = zarr.create_array(memory, name="x", shape=(3,), dtype="int16")
    >>> array_at(memory, "x", made.metadata).shape
    (3,)
    """
    return zarr.Array(AsyncArray(metadata, StorePath(store, path)))


def metadata_from(document: bytes) -> ArrayV3Metadata:
    """The array metadata of a ``zarr.json`` document (as :func:`array_document` writes).

    >>> made = zarr.create_array(zarr.storage.MemoryStore(), shape=(3,), dtype="int16")
    >>> metadata_from(array_document(made.metadata)).shape
    (3,)
    """
    return ArrayV3Metadata.from_dict(json.loads(document))


def read_group(store: Store, zarr_store: zarr.abc.store.Store, path: str) -> zarr.Group | None:
    """The group at ``path``, opened from its ``zarr.json`` alone (one read), or None if absent.

    zarr's ``open_group`` reads the Zarr v2 documents too (four requests on an object store);
    segflow writes only Zarr v3.

    Raises:
        StoreError: If ``zarr.json`` at ``path`` is not a Zarr v3 group's.
    """
    key = f"{path}/zarr.json"
    try:
        document = json.loads(store.read_bytes(key))
        if document.get("node_type") != "group":
            raise ValueError(f"node_type {document.get('node_type')!r}")
        metadata = GroupMetadata.from_dict(document)
    except KeyNotFoundError:
        return None
    except (AttributeError, TypeError, ValueError) as exc:
        raise StoreError(
            f"Expected Zarr v3 group metadata at {key!r} in store {store.url!r}, got: {exc}"
        ) from exc
    return zarr.Group(AsyncGroup(metadata, StorePath(zarr_store, path)))


def write_group(
    store: Store,
    zarr_store: zarr.abc.store.Store,
    path: str,
    attributes: Mapping[str, Any],
    arrays: Mapping[str, ArrayV3Metadata],
) -> zarr.Group:
    """Write a group holding empty ``arrays`` (name to metadata) and return it, no read.

    The arrays' metadata go first, together; the group's last, so a crash in between leaves
    no group, only unreferenced documents that the next write of the path replaces.
    """
    documents = {f"{path}/{name}/zarr.json": array_document(m) for name, m in arrays.items()}
    store.write_many(documents)
    store.write_bytes(f"{path}/zarr.json", group_document(attributes))
    metadata = GroupMetadata(attributes=dict(attributes))
    return zarr.Group(AsyncGroup(metadata, StorePath(zarr_store, path)))


def write_group_attribute(store: Store, path: str, name: str, value: Any) -> None:
    """Set attribute ``name`` of the group at ``path`` (created if missing), keeping the others.

    One read and one atomic write of the group's ``zarr.json``, where zarr's ``open_group``
    and attribute update take five requests on an object store.

    Raises:
        StoreError: If ``zarr.json`` at ``path`` is not a Zarr v3 group's.
    """
    key = f"{path}/zarr.json"
    try:
        document = json.loads(store.read_bytes(key))
        attributes = dict(document["attributes"]) if document.get("node_type") == "group" else None
    except KeyNotFoundError:
        attributes = {}
    except (KeyError, TypeError, ValueError):
        attributes = None
    if attributes is None:
        raise StoreError(f"Expected Zarr v3 group metadata at {key!r} in store {store.url!r}.")
    store.write_bytes(key, group_document({**attributes, name: value}))
