"""Small helpers shared by the sources: local paths versus fsspec URLs.

A source URI is either a local path (``/data/cam.mp4``, ``file:///data/cam.mp4``) or an fsspec
URL (``s3://bucket/cam.mp4``, ``memory://x.npy``). Local paths are opened with the standard
library (so NumPy can memory-map them); everything else goes through fsspec.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import urlparse

import fsspec
from fsspec import AbstractFileSystem

from segflow.errors import SourceError, SourceNotFoundError


def local_path(uri: str) -> str | None:
    """Return the local filesystem path of ``uri``, or None if it is a remote URL.

    >>> local_path("file:///data/a.npy"), local_path("s3://b/a.npy"), local_path("a.npy")
    ('/data/a.npy', None, 'a.npy')
    """
    scheme = urlparse(uri).scheme.lower()
    if scheme == "file":
        return urlparse(uri).path
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # C:\ on Windows
        return uri
    return None


def filesystem(
    uri: str, storage_options: dict[str, Any] | None = None
) -> tuple[AbstractFileSystem, str]:
    """Return the fsspec filesystem of ``uri`` and the path inside it."""
    try:
        return fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise SourceError(f"Cannot open source {uri!r}: {exc}") from exc


def full_uri(fs: AbstractFileSystem, path: str, like: str) -> str:
    """Return ``path`` (from ``fs``) as a URI in the same form as ``like`` (path or URL)."""
    if local_path(like) is not None:
        return path
    return fs.unstrip_protocol(path)


@contextmanager
def open_binary(uri: str, storage_options: dict[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """Open ``uri`` for reading bytes, raising :class:`SourceNotFoundError` if it is missing."""
    path = local_path(uri)
    try:
        if path is not None:
            handle: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed below
        else:
            fs, inner = filesystem(uri, storage_options)
            handle = fs.open(inner, "rb")
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"Source {uri!r} not found.") from exc
    except IsADirectoryError as exc:
        raise SourceError(f"Source {uri!r} is a directory, expected a file.") from exc
    except OSError as exc:
        raise SourceError(f"Cannot open source {uri!r}: {exc}") from exc
    with handle:
        yield handle


def require_file(uri: str, storage_options: dict[str, Any] | None = None) -> None:
    """Raise :class:`SourceNotFoundError` unless ``uri`` is an existing file."""
    path = local_path(uri)
    if path is not None:
        exists, is_dir = os.path.exists(path), os.path.isdir(path)
    else:
        fs, inner = filesystem(uri, storage_options)
        exists, is_dir = fs.exists(inner), fs.isdir(inner)
    if not exists:
        raise SourceNotFoundError(f"Source {uri!r} not found.")
    if is_dir:
        raise SourceError(f"Source {uri!r} is a directory, expected a file.")


def split_name(uri: str) -> tuple[str, str]:
    """Split ``uri`` into its parent and its last component, keeping the URL form.

    >>> split_name("s3://b/x/cam.mp4")
    ('s3://b/x', 'cam.mp4')
    """
    stripped = uri.rstrip("/")
    if local_path(uri) is not None and os.sep != "/":
        head, tail = os.path.split(stripped)
        return head, tail
    head, _, tail = stripped.rpartition("/")
    return head, tail


def join(parent: str, name: str) -> str:
    """Join a child name to a path or URL."""
    if local_path(parent) is not None and urlparse(parent).scheme != "file":
        return os.path.join(parent, name)
    return posixpath.join(parent, name)
