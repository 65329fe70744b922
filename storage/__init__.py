"""Storage backends for segflow: one :class:`Store` interface, a local and an S3 implementation.

Use :func:`open_store` with a path or URL::

    store = open_store("./segflow-data")
    store = open_store("s3://bucket/prefix", storage_options={"endpoint_url": ...})
"""

from __future__ import annotations

from storage.base import Store, check_key
from storage.local import LocalStore
from storage.urls import DEFAULT_STORE, open_store

__all__ = ["DEFAULT_STORE", "LocalStore", "Store", "check_key", "open_store"]
