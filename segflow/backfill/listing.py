"""Listing an archive's date partitions, each with a cheap identity of its files (no file opened).

A partition is one ``YYYY-MM-DD`` folder of the archive. Its *identity* is a digest of its
files' relative names, sizes and modification stamps (ETags on S3): a partition whose files
change gets a new identity, so a backfill knows to run it again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from segflow.errors import SourceError
from segflow.sources.fs import filesystem, local_path

__all__ = ["Partition", "list_partitions", "local_files", "partition_identity"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Partition:
    """One day of the archive.

    Attributes:
        date: ``YYYY-MM-DD``.
        uri: The day's folder (path or URL).
        identity: Digest of the files' relative names, sizes and stamps.
        files: Number of files in the folder (recursively).
    """

    date: str
    uri: str
    identity: str
    files: int


def partition_identity(entries: Iterable[tuple[str, int, str]]) -> str:
    """The identity of a partition's files: a digest of ``(relative name, size, stamp)`` rows.

    The order of the rows does not matter.

    >>> a = partition_identity([("cam1.npy", 10, "1"), ("cam2.npy", 12, "2")])
    >>> a == partition_identity([("cam2.npy", 12, "2"), ("cam1.npy", 10, "1")])
    True
    >>> a == partition_identity([("cam1.npy", 10, "1"), ("cam2.npy", 12, "3")])
    False
    >>> len(a)
    32
    """
    canonical = json.dumps(sorted(entries), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def local_files(folder: str, prefix: str = "") -> Iterator[tuple[str, int, str]]:
    """``(relative name, size, mtime_ns)`` of every file under ``folder`` (hidden ones skipped).

    Args:
        folder: A local folder.
        prefix: Prepended to every relative name (the recursion's path so far).

    Raises:
        FileNotFoundError: If ``folder`` does not exist.
    """
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                yield from local_files(entry.path, f"{prefix}{entry.name}/")
            else:
                stat = entry.stat()
                yield f"{prefix}{entry.name}", stat.st_size, str(stat.st_mtime_ns)


def list_partitions(
    archive: str,
    start: datetime.date | str | None = None,
    end: datetime.date | str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[Partition]:
    """List the date partitions of ``archive`` between ``start`` and ``end`` (inclusive), sorted.

    Folders that are not ``YYYY-MM-DD`` and hidden files are ignored; empty days are left out
    on S3 (a prefix with no object does not exist) and kept, with no file, locally.

    Args:
        archive: Local path or URL (``s3://bucket/prefix``) of the archive.
        start: First day, or None for the archive's first.
        end: Last day, or None for the archive's last.
        storage_options: fsspec options of a remote archive.

    Returns:
        The partitions in date order.

    Raises:
        SourceError: If a local archive folder does not exist.

    >>> list_partitions("/no/such/archive")
    Traceback (most recent call last):
    ...
    segflow.errors.SourceError: Archive '/no/such/archive' not found: expected a folder of ...
    """
    first = None if start is None else str(start)
    last = None if end is None else str(end)
    path = local_path(archive)
    if path is not None:
        return _list_local(path, first, last)
    return _list_remote(archive, first, last, storage_options)


def _is_date(name: str) -> bool:
    if not _DATE.match(name):
        return False
    try:
        datetime.date.fromisoformat(name)
    except ValueError:
        return False
    return True


def _in_range(name: str, start: str | None, end: str | None) -> bool:
    return (start is None or name >= start) and (end is None or name <= end)


def _list_local(root: str, start: str | None, end: str | None) -> list[Partition]:
    try:
        days = [e for e in os.scandir(root) if e.is_dir() and _is_date(e.name)]
    except FileNotFoundError:
        raise SourceError(
            f"Archive {root!r} not found: expected a folder of YYYY-MM-DD/ folders."
        ) from None
    partitions = []
    for day in sorted(days, key=lambda e: e.name):
        if _in_range(day.name, start, end):
            files = list(local_files(day.path))
            partitions.append(Partition(day.name, day.path, partition_identity(files), len(files)))
    return partitions


def _stamp(info: dict[str, Any]) -> str:
    for key in ("ETag", "etag", "mtime", "LastModified", "last_modified"):
        if info.get(key) is not None:
            return str(info[key]).strip('"')
    return ""


def _list_remote(
    archive: str, start: str | None, end: str | None, storage_options: dict[str, Any] | None
) -> list[Partition]:
    fs, root = filesystem(archive, storage_options)
    root = root.rstrip("/")
    fs.invalidate_cache(root)  # listings are cached; a rerun must see new objects
    grouped: dict[str, list[tuple[str, int, str]]] = {}
    # One recursive listing of the whole prefix (paged by the filesystem), not one per day.
    for path, info in fs.find(root, detail=True).items():
        day, _, name = path[len(root) + 1 :].partition("/")
        hidden = name.rsplit("/", 1)[-1].startswith(".")
        if name and not hidden and _is_date(day) and _in_range(day, start, end):
            grouped.setdefault(day, []).append((name, int(info.get("size") or 0), _stamp(info)))
    base = archive.rstrip("/")
    return [
        Partition(day, f"{base}/{day}", partition_identity(files), len(files))
        for day, files in sorted(grouped.items())
    ]
