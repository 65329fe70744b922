"""Label files: per-frame (one row per frame) or per-sequence (a single row) labels.

A labels file sits next to its source as a *sidecar* named after the source's stem:
``cam.mp4`` -> ``cam.labels.npy`` (or ``.labels.csv`` / ``.labels.txt``); an image folder
``frames/`` -> ``frames.labels.npy`` beside it. A file with one row is a per-sequence label;
the ingest loop checks any other length against the number of frames.

Labels are small next to the frames (one value, or a short vector, per frame), so they are
loaded whole.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import numpy as np

from segflow.errors import SourceError
from segflow.sources.classnames import label_number
from segflow.sources.fs import filesystem, join, local_path, open_binary, split_name

#: Sidecar suffixes, in the order they are looked for.
SIDECAR_SUFFIXES = (".labels.npy", ".labels.csv", ".labels.txt")


def is_sidecar(name: str) -> bool:
    """Return whether ``name`` is a labels sidecar file (and so not a source itself)."""
    return name.lower().endswith(SIDECAR_SUFFIXES)


def load_labels(path: str, *, storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """Load a labels file.

    Args:
        path: A ``.npy`` file (any numeric dtype, kept as stored), or a ``.csv``/``.txt`` file
            with one value per line, or one row of values per line (a label vector per
            frame). A non-numeric first row is taken as a header and skipped.
        storage_options: fsspec options for remote files.

    Returns:
        An array of shape ``(n, ...)``. Text files give ``int64`` when every value is an
        integer, else ``float32``. ``n == 1`` means a per-sequence label.

    Raises:
        SourceNotFoundError: If the file does not exist.
        SourceError: If it is empty, ragged or non-numeric. A 0-dimensional array (a scalar
            saved with ``np.save``) is one per-sequence label; booleans become 0/1, and so do
            ``true``/``false`` and ``yes``/``no`` in text files; empty text cells are NaN
            (an unlabelled frame).
    """
    if path.lower().endswith(".npy"):
        labels = _load_npy(path, storage_options)
    elif path.lower().endswith((".csv", ".txt", ".tsv")):
        labels = _load_text(path, storage_options)
    else:
        raise SourceError(
            f"Labels file {path!r} has an unsupported extension: expected .npy, .csv or .txt."
        )
    if labels.ndim == 0:  # np.save(path, np.int64(3)): one label for the whole sequence
        labels = labels.reshape(1)
    if labels.shape[0] == 0:
        raise SourceError(f"Labels file {path!r} is empty (shape {labels.shape}).")
    if labels.dtype.kind not in "biuf":
        raise SourceError(f"Labels file {path!r} has dtype {labels.dtype}: expected numbers.")
    return labels.astype(np.int8) if labels.dtype.kind == "b" else labels


def _load_npy(path: str, storage_options: dict[str, Any] | None) -> np.ndarray:
    with open_binary(path, storage_options) as handle:
        try:
            return np.load(io.BytesIO(handle.read()), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SourceError(f"Labels file {path!r} is not a valid .npy array: {exc}") from exc


def _load_text(path: str, storage_options: dict[str, Any] | None) -> np.ndarray:
    with open_binary(path, storage_options) as handle:
        text = handle.read().decode("utf-8-sig", errors="replace")
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    rows = [
        [cell.strip() for cell in row]
        for row in csv.reader(io.StringIO(text), delimiter=delimiter)
        if row and any(cell.strip() for cell in row)
    ]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise SourceError(f"Labels file {path!r} is empty (no values).")
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise SourceError(f"Labels file {path!r} has rows of different widths {sorted(widths)}.")
    values = []
    for number, row in enumerate(rows, start=1):
        try:
            values.append([label_number(cell) for cell in row])
        except ValueError:
            raise SourceError(
                f"Labels file {path!r}, data row {number}: non-numeric value in {row!r}."
            ) from None
    array = np.array(values, dtype=np.float64).reshape(len(values), -1)
    if array.shape[1] == 1:
        array = array[:, 0]
    integral = np.isfinite(array).all() and np.array_equal(array, np.round(array))
    return array.astype(np.int64 if integral else np.float32)


def _numeric(row: list[str]) -> bool:
    try:
        [label_number(cell) for cell in row]
    except ValueError:
        return False
    return bool(row) and any(cell.strip() for cell in row)


def _exists(uri: str, storage_options: dict[str, Any] | None) -> bool:
    path = local_path(uri)
    if path is not None:
        return os.path.isfile(path)
    fs, inner = filesystem(uri, storage_options)
    return bool(fs.isfile(inner))


def sidecar_labels(source_uri: str, *, storage_options: dict[str, Any] | None = None) -> str | None:
    """Return the labels sidecar of a source, or None if it has none.

    ``dir/cam.mp4`` -> ``dir/cam.labels.npy``, then ``.labels.csv``, then ``.labels.txt``;
    for a folder ``dir/frames`` -> ``dir/frames.labels.npy`` and so on.

    >>> sidecar_labels("/nonexistent/cam.mp4") is None
    True
    """
    parent, name = split_name(source_uri)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    for suffix in SIDECAR_SUFFIXES:
        candidate = join(parent, stem + suffix) if parent else stem + suffix
        if _exists(candidate, storage_options):
            return candidate
    return None
