"""What a backfill did before: one marker per partition and an index of them all.

A marker, ``backfills/<model_tag>/<YYYY-MM-DD>.json`` in the store, records one partition's
result. The index, ``backfills/<model_tag>/_index.json``, holds every marker's identity and
status, so deciding over 10,000 done partitions costs one listing and one read, not 10,000
reads; markers the index does not know yet (a run that crashed before updating it) are read
one by one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from storage.base import Store

if TYPE_CHECKING:  # the partition module writes markers: import its result type for hints only
    from segflow.backfill.partition import PartitionResult

__all__ = ["INDEX", "MARKERS", "marker_key", "read_markers", "update_index", "write_marker"]

#: Folder of the markers in the store.
MARKERS = "backfills"
#: Name of the index among a tag's markers.
INDEX = "_index.json"


def marker_key(model_tag: str, date: str) -> str:
    """The store key of a partition's marker.

    >>> marker_key("cam-model", "2026-01-31")
    'backfills/cam-model/2026-01-31.json'
    """
    return f"{MARKERS}/{model_tag}/{date}.json"


def read_markers(store: Store, model_tag: str, *, workers: int = 16) -> dict[str, dict[str, Any]]:
    """``{date: {"identity", "status"}}`` of every partition with a marker for ``model_tag``.

    One listing of ``backfills/<model_tag>/`` and one read of the index; only markers the
    index does not hold are read (concurrently). A marker deleted by hand is forgotten even
    if the index still names it, so deleting a marker is a way to redo one day.

    Args:
        store: The store the backfill writes to.
        model_tag: The model whose markers to read.
        workers: Markers read at once when the index lacks some.
    """
    prefix = f"{MARKERS}/{model_tag}/"
    dates = {
        key[len(prefix) : -len(".json")]
        for key in store.list(prefix.rstrip("/"))
        if key.endswith(".json") and not key.endswith(INDEX)
    }
    index = _read_index(store, model_tag)
    known = {d: index[d] for d in dates if d in index}
    missing = sorted(dates - known.keys())
    if missing:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            records = pool.map(lambda d: _read_json(store, marker_key(model_tag, d)), missing)
            known.update({d: _summary(r) for d, r in zip(missing, records, strict=True)})
    return known


def write_marker(store: Store, model_tag: str, result: PartitionResult) -> None:
    """Record ``result`` in its partition's marker (atomically replaced)."""
    data = json.dumps(result.to_json(), indent=1).encode()
    store.write_bytes(marker_key(model_tag, result.partition), data)


def update_index(
    store: Store,
    model_tag: str,
    *,
    drop: Iterable[str] = (),
    add: Iterable[PartitionResult] = (),
) -> None:
    """Rewrite the index: forget ``drop`` (about to run), record ``add`` (just finished).

    Only the backfill's parent writes the index, before and after running, so partitions
    running concurrently never race on it. Only ``done`` and ``failed`` results are recorded.
    """
    index = _read_index(store, model_tag)
    for date in drop:
        index.pop(date, None)
    for result in add:
        if result.status in ("done", "failed"):
            index[result.partition] = {"identity": result.identity, "status": result.status}
    body = {"model_tag": model_tag, "partitions": dict(sorted(index.items()))}
    store.write_bytes(_index_key(model_tag), json.dumps(body, separators=(",", ":")).encode())


def _index_key(model_tag: str) -> str:
    return f"{MARKERS}/{model_tag}/{INDEX}"


def _read_json(store: Store, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(store.read_bytes(key))
    return data


def _read_index(store: Store, model_tag: str) -> dict[str, dict[str, Any]]:
    key = _index_key(model_tag)
    if not store.exists(key):
        return {}
    partitions: dict[str, dict[str, Any]] = _read_json(store, key)["partitions"]
    return partitions


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {"identity": record["identity"], "status": record["status"]}
