"""Argument checks shared by every layer, with one message style (the Keras form).

Every check raises :class:`~storage.errors.ConfigError` (a ``ValueError``) whose message names
the argument, what was expected and what was received::

    Received an invalid value for argument `lanes`, expected a positive integer, got 0.

Ids become path components in a store, so their pattern lives here, at the bottom.
"""

from __future__ import annotations

import numbers
import re
from typing import Any

from storage.errors import ConfigError, InvalidIdError

__all__ = [
    "ID_PATTERN",
    "invalid_argument",
    "require_non_negative_int",
    "require_positive_int",
    "validate_id",
]

#: Ids start with a letter or digit and hold only letters, digits, ``.``, ``_`` and ``-``.
#: Slashes, ``..`` and leading dots are impossible, so an id is always one safe path component.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def invalid_argument(name: str, expected: str, got: Any) -> ConfigError:
    """Return the error for argument ``name`` holding ``got`` where ``expected`` was needed.

    >>> str(invalid_argument("lanes", "a positive integer", 0))
    'Received an invalid value for argument `lanes`, expected a positive integer, got 0.'
    """
    return ConfigError(
        f"Received an invalid value for argument `{name}`, expected {expected}, got {got!r}."
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``> 0`` (bools are not), else raise.

    >>> require_positive_int("lanes", 4)
    4
    >>> require_positive_int("lanes", True)
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received an invalid value for argument `lanes`, expected a
    positive integer, got True.
    """
    if not _is_int(value) or value <= 0:
        raise invalid_argument(name, "a positive integer", value)
    return int(value)


def require_non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= 0``, else raise.

    >>> require_non_negative_int("start", 0)
    0
    """
    if not _is_int(value) or value < 0:
        raise invalid_argument(name, "an integer >= 0", value)
    return int(value)


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
