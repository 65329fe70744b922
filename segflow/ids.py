"""Validation of identifiers that become path components in a store.

:func:`validate_id` and :data:`ID_PATTERN` live in :mod:`storage.validation` (the storage
layer checks ids too); this module re-exports them and derives ids from file names.
"""

from __future__ import annotations

import re

from storage.validation import ID_PATTERN, validate_id

__all__ = ["ID_PATTERN", "id_from_name", "validate_id"]


def id_from_name(name: str) -> str:
    """Derive a valid id from a file name, replacing anything not allowed with ``-``.

    >>> id_from_name("my clip (1).mp4")
    'my-clip-1'
    """
    stem = name.rsplit("/", 1)[-1]
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)[:128]
    return validate_id(cleaned or "sequence")
