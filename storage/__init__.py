"""Storage backends for segflow: one :class:`Store` interface, a local and an S3 implementation.

The bottom layer: nothing here imports from ``segflow``. Use :func:`open_store` with a path or
URL::

    store = open_store("./segflow-data")
    store = open_store("s3://bucket/prefix", storage_options={"endpoint_url": ...})

The names below are loaded on first use, so ``import storage.errors`` stays free of zarr.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.base import Store, check_key
    from storage.local import LocalStore
    from storage.urls import DEFAULT_STORE, open_store

__all__ = ["DEFAULT_STORE", "LocalStore", "Store", "check_key", "open_store"]

_HOMES = {
    "DEFAULT_STORE": "storage.urls",
    "LocalStore": "storage.local",
    "Store": "storage.base",
    "check_key": "storage.base",
    "open_store": "storage.urls",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
