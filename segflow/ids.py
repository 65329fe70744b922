"""Validation of identifiers that become path components in a store."""

from __future__ import annotations

import re

from segflow.errors import InvalidIdError

#: Ids start with a letter or digit and hold only letters, digits, ``.``, ``_`` and ``-``.
#: Slashes, ``..`` and leading dots are impossible, so an id is always one safe path component.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_id(value: str, *, what: str = "sequence id") -> str:
    """Return ``value`` if it is a valid id, else raise :class:`InvalidIdError`.

    Args:
        value: The candidate id.
        what: What the id names, used in the error message.

    Returns:
        The id unchanged.

    Raises:
        InvalidIdError: If ``value`` is not a string matching :data:`ID_PATTERN` or contains ``..``.

    >>> validate_id("cam-01_2026.01.31")
    'cam-01_2026.01.31'
    """
    if not isinstance(value, str) or not ID_PATTERN.match(value) or ".." in value:
        raise InvalidIdError(
            f"Invalid {what} {value!r}: expected 1-128 characters of letters, digits, '.', '_' "
            f"or '-', starting with a letter or digit and without '..'."
        )
    return value


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
