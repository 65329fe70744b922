"""What the concrete sources share: argument checks, fingerprint caching, partition lookup."""

from __future__ import annotations

import re
import sys
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from segflow.errors import ConfigError
from segflow.fingerprint import Fingerprint
from segflow.sources.base import Source
from storage.validation import require_non_negative_int, require_positive_int

_DATE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=)?(\d{4})-(\d{2})-(\d{2})$")


def partition_of(uri: str) -> str | None:
    """Return the ``YYYY-MM-DD`` partition named by a path component of ``uri``, if any.

    Directory components and the file's stem are searched, innermost first; Hive-style
    ``date=YYYY-MM-DD`` components count too. Impossible dates (month 13) are ignored.

    >>> partition_of("s3://bucket/archive/2026-01-31/cam.mp4")
    '2026-01-31'
    >>> partition_of("/data/day=2026-02-01/run-7/cam.mp4")
    '2026-02-01'
    >>> partition_of("/data/cam.mp4") is None
    True
    """
    parts = uri.split("://", 1)[-1].replace("\\", "/").rstrip("/").split("/")
    parts[-1] = parts[-1].split(".", 1)[0]
    for part in reversed(parts):
        match = _DATE.match(part)
        if match and 1 <= int(match[2]) <= 12 and 1 <= int(match[3]) <= 31:
            return f"{match[1]}-{match[2]}-{match[3]}"
    return None


def check_resize(resize: Any) -> tuple[int, int] | None:
    """Return ``resize`` as ``(height, width)`` or None; raise :class:`ConfigError` if invalid."""
    if resize is None:
        return None
    if (
        len(resize) != 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in resize)
        or min(resize) <= 0
    ):
        raise ConfigError(
            f"Invalid resize {resize!r}: expected (height, width), two positive integers."
        )
    return int(resize[0]), int(resize[1])


def check_block_args(block_frames: int, start: int) -> None:
    """Raise :class:`ConfigError` unless ``block_frames > 0`` and ``start >= 0``."""
    require_positive_int("block_frames", block_frames)
    require_non_negative_int("start", start)


class BlockBuffers:
    """Hands out block arrays, recycling earlier ones once the consumer has dropped them.

    A fresh 100 MB block costs page faults on first write, measured at 25-40 % of video
    decode time; recycling avoids that. An array is reused only if nothing but this object
    refers to it (its reference count says so), so a block the consumer keeps, or any view
    of it, is never overwritten. Two arrays are kept because a ``for block in ...`` loop
    still holds the previous block while the next one is being filled.
    """

    def __init__(self, keep: int = 2) -> None:
        self._arrays: list[np.ndarray] = []
        self._keep = keep

    def get(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Return an uninitialised array of ``shape`` and ``dtype``."""
        wanted = np.dtype(dtype)
        index = self._free_index(shape, wanted)
        if index is None:
            array = np.empty(shape, dtype=wanted)
            self._arrays = [*self._arrays, array][-self._keep :]
        else:
            array = self._arrays.pop(index)
            self._arrays.append(array)
        return array

    def _free_index(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> int | None:
        for index in range(len(self._arrays)):
            candidate = self._arrays[index]
            # References while checking: the list, `candidate`, and getrefcount's argument.
            if (
                candidate.shape == shape
                and candidate.dtype == dtype
                and sys.getrefcount(candidate) == 3
            ):
                return index
        return None


class FingerprintedSource(Source):
    """A :class:`Source` that computes its fingerprint once and can reuse a recorded one.

    Args:
        uri: The source's path or URL.
        storage_options: fsspec options for remote sources.
        known: The :meth:`fingerprint_record` of a previous run over the same source; when
            the source's size and modification time match, its content is not re-hashed.
    """

    def __init__(
        self,
        uri: str,
        *,
        storage_options: dict[str, Any] | None = None,
        known: Mapping[str, Any] | None = None,
    ) -> None:
        self.uri = str(uri)
        self.storage_options = dict(storage_options or {})
        self._known = dict(known) if known else None
        self._fingerprint: Fingerprint | None = None
        self._deferred = False

    def fingerprint(self) -> Fingerprint:
        """Return the source's fingerprint (computed on first use, then cached).

        After :meth:`defer_fingerprint` and a complete read of the frames it is the hash taken
        during that read; otherwise it is computed here.
        """
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint(self._known)
        return self._fingerprint

    def defer_fingerprint(self) -> bool:
        """Take the content hash from the frames as they are read, if this source can.

        For a fresh ingest this saves a whole pass over the source. Until the frames are read,
        :meth:`probe` reports :meth:`provisional_fingerprint` instead of the content hash.

        Returns:
            Whether the fingerprint is deferred.
        """
        self._deferred = self._known is None and self.provisional_fingerprint() is not None
        return self._deferred

    def probe_fingerprint(self) -> str:
        """The fingerprint for :meth:`probe`: provisional while a deferred hash is pending."""
        if self._deferred and self._fingerprint is None:
            provisional = self.provisional_fingerprint()
            if provisional is not None:
                return provisional
        return self.fingerprint().value

    def fingerprint_record(self) -> dict[str, Any]:
        """Return a record to store and pass back as ``known`` on a later run."""
        return self.fingerprint().record()

    @abstractmethod
    def _compute_fingerprint(self, known: Mapping[str, Any] | None) -> Fingerprint:
        """Compute the fingerprint, reusing ``known`` where the kind of source allows."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
