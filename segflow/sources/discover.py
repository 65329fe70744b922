"""Finding sources: expanding paths, globs, directories and S3 prefixes, and opening each.

What one source is:

- a file with a known extension: a video (``.mp4 .mkv .avi .mov .webm .m4v``), an array
  (``.npy``, ``.npz``), a series (``.csv``, ``.tsv``);
- a Zarr array: a directory named ``*.zarr`` or holding ``zarr.json`` / ``.zarray``;
- a directory holding images: the whole directory is *one* image-folder source.

A directory given as a spec is searched recursively: image directories and Zarr arrays are
taken whole, other known files one by one. Hidden files and labels sidecars
(``*.labels.npy``...) are never sources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fsspec import AbstractFileSystem

from segflow.config import SourceConfig
from segflow.errors import SourceError, SourceNotFoundError
from segflow.sources._common import partition_of
from segflow.sources.arrays import NpySource, NpzSource, ZarrArraySource
from segflow.sources.base import Source
from segflow.sources.csv import CSV_EXTENSIONS, CsvSource
from segflow.sources.fs import filesystem, full_uri
from segflow.sources.images import ImageFolderSource, is_image, natural_key
from segflow.sources.labels import is_sidecar
from segflow.sources.video import VIDEO_EXTENSIONS, VideoSource

__all__ = ["SourceOptions", "discover", "open_source", "partition_of", "source_kind"]

_FILE_EXTENSIONS = (*VIDEO_EXTENSIONS, ".npy", ".npz", *CSV_EXTENSIONS)
_ZARR_MARKERS = ("zarr.json", ".zarray")


#: How to read sources; one set of options applies to every source of an ingest.
SourceOptions = SourceConfig


def has_magic(path: str) -> bool:
    """Return whether ``path`` is a glob pattern (holds ``*``, ``?`` or ``[``)."""
    return any(char in path for char in "*?[")


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _is_source_file(name: str) -> bool:
    lowered = name.lower()
    return (
        not name.startswith(".") and not is_sidecar(lowered) and lowered.endswith(_FILE_EXTENSIONS)
    )


def _entries(fs: AbstractFileSystem, path: str) -> list[dict[str, Any]]:
    fs.invalidate_cache(path)  # S3 listings are cached; a re-run must see new objects
    return list(fs.ls(path, detail=True))


def _is_zarr(fs: AbstractFileSystem, path: str, names: Sequence[str] | None = None) -> bool:
    if path.rstrip("/").lower().endswith(".zarr"):
        return True
    if names is None:
        return any(fs.isfile(f"{path.rstrip('/')}/{marker}") for marker in _ZARR_MARKERS)
    return any(marker in names for marker in _ZARR_MARKERS)


def _expand_dir(fs: AbstractFileSystem, path: str, like: str) -> list[str]:
    """Return the sources inside directory ``path`` (recursively), as URIs shaped like ``like``."""
    entries = _entries(fs, path)
    names = [_name(e["name"]) for e in entries]
    if _is_zarr(fs, path, names):
        return [full_uri(fs, path.rstrip("/"), like)]
    found: list[str] = []
    if any(e["type"] != "directory" and is_image(n) for e, n in zip(entries, names, strict=True)):
        found.append(full_uri(fs, path.rstrip("/"), like))
    for entry, name in sorted(zip(entries, names, strict=True), key=lambda x: natural_key(x[1])):
        if name.startswith("."):
            continue
        if entry["type"] == "directory":
            found.extend(_expand_dir(fs, entry["name"], like))
        elif _is_source_file(name):
            found.append(full_uri(fs, entry["name"], like))
    return found


def _expand(spec: str, storage_options: dict[str, Any] | None) -> list[str]:
    fs, path = filesystem(spec, storage_options)
    if has_magic(path):
        found: list[str] = []
        for match in sorted(fs.glob(path), key=natural_key):
            if fs.isdir(match):
                found.extend(_expand_dir(fs, match, spec))
            elif _is_source_file(_name(match)):
                found.append(full_uri(fs, match, spec))
        return found
    if fs.isdir(path):
        return _expand_dir(fs, path, spec)
    if fs.exists(path):
        return [full_uri(fs, path, spec)]  # named explicitly: open_source judges the extension
    return []


def discover(specs: Sequence[str], storage_options: dict[str, Any] | None = None) -> list[str]:
    """Expand paths, globs, directories and S3 prefixes into source URIs.

    Args:
        specs: Files, directories, glob patterns (``data/*.mp4``, ``s3://b/2026-*/``) or
            prefixes (``s3://bucket/archive/``).
        storage_options: fsspec options for remote specs.

    Returns:
        The source URIs, each spec's in natural order, duplicates removed. Local specs give
        local paths; remote specs give URLs with their scheme.

    Raises:
        SourceNotFoundError: If a spec matches nothing (naming the spec).
    """
    found: dict[str, None] = {}
    for spec in specs:
        matches = _expand(str(spec), storage_options)
        if not matches:
            raise SourceNotFoundError(
                f"Source {spec!r} matched nothing: expected an existing file, a directory "
                f"holding sources, or a glob matching some."
            )
        found.update(dict.fromkeys(matches))
    return list(found)


def source_kind(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    """Return ``video``, ``npy``, ``npz``, ``csv``, ``zarr`` or ``images`` for ``uri``.

    Raises:
        SourceNotFoundError: If ``uri`` does not exist.
        SourceError: If it is of no supported kind.
    """
    fs, path = filesystem(uri, storage_options)
    lowered = path.rstrip("/").lower()
    if not fs.exists(path):
        raise SourceNotFoundError(f"Source {uri!r} not found.")
    if fs.isdir(path):
        names = [_name(e["name"]) for e in _entries(fs, path)]
        if _is_zarr(fs, path, names):
            return "zarr"
        if any(is_image(n) for n in names):
            return "images"
        raise SourceError(
            f"Source {uri!r} is a directory holding neither images nor a Zarr array; pass it "
            f"to discover() to list the sources inside."
        )
    for kind, extensions in (
        ("video", VIDEO_EXTENSIONS),
        ("npy", (".npy",)),
        ("npz", (".npz",)),
        ("csv", CSV_EXTENSIONS),
    ):
        if lowered.endswith(extensions):
            return kind
    raise SourceError(
        f"Source {uri!r} has an unsupported type: expected one of "
        f"{', '.join(_FILE_EXTENSIONS)}, a Zarr array or a folder of images."
    )


def open_source(
    uri: str,
    *,
    options: SourceOptions | Any | None = None,
    storage_options: dict[str, Any] | None = None,
    known: Mapping[str, Any] | None = None,
) -> Source:
    """Open the right :class:`Source` for ``uri``.

    Args:
        uri: A source URI, as :func:`discover` returns.
        options: How to read it: a :class:`SourceOptions`, or any object with some of its
            attributes (missing ones take their defaults).
        storage_options: fsspec options for remote sources.
        known: The source's fingerprint record from a previous run (reused if unchanged).

    Raises:
        SourceNotFoundError: If ``uri`` does not exist.
        SourceError: If it is of no supported kind.
    """
    defaults = SourceOptions()
    opt = {name: getattr(options, name, getattr(defaults, name)) for name in defaults.model_fields}
    common: dict[str, Any] = {"storage_options": storage_options, "known": known}
    kind = source_kind(uri, storage_options)
    if kind in ("video", "images"):
        cls = VideoSource if kind == "video" else ImageFolderSource
        return cls(uri, resize=opt["resize"], grayscale=opt["grayscale"], **common)
    if kind == "npy":
        return NpySource(uri, **common)
    if kind == "npz":
        return NpzSource(uri, opt["npz_key"], **common)
    if kind == "csv":
        return CsvSource(
            uri,
            feature_columns=opt["feature_columns"],
            timestamp_column=opt["timestamp_column"],
            label_column=opt["label_column"],
            class_names=opt["class_names"],
            **common,
        )
    return ZarrArraySource(uri, opt["zarr_path"], **common)
