"""The exceptions segflow raises, at the bottom of the layers (this module imports nothing).

Every error is a :class:`SegflowError`, so callers can catch the general one or a specific
one. ``segflow.errors`` re-exports all of them beside the errors of sources::

    SegflowError
    ├── ConfigError (ValueError)          a parameter outside what is accepted
    │   └── InvalidIdError                a sequence id or model tag that breaks the pattern
    ├── SourceError                       an input that cannot be ingested (segflow.errors)
    │   └── SourceNotFoundError (FileNotFoundError)
    └── StoreError                        a problem with the store itself
        ├── UnknownSchemeError (ValueError)
        ├── KeyNotFoundError (KeyError)
        ├── SequenceNotFoundError (KeyError)
        ├── IncompleteSequenceError
        ├── LockedError                   another run holds the lock
        └── CheckpointError               a checkpoint or exported model missing or corrupt
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "IncompleteSequenceError",
    "InvalidIdError",
    "KeyNotFoundError",
    "LockedError",
    "SegflowError",
    "SequenceNotFoundError",
    "StoreError",
    "UnknownSchemeError",
]

# The public names are documented as ``segflow.errors.X``: tracebacks and doctests show that
# module, wherever the class is defined.
_PUBLIC_MODULE = "segflow.errors"


class SegflowError(Exception):
    """Root of every error segflow raises on purpose."""


class ConfigError(SegflowError, ValueError):
    """A configuration value or argument outside what is accepted."""


class InvalidIdError(ConfigError):
    """A sequence id (or model tag) that does not match the strict id pattern."""


class StoreError(SegflowError):
    """A problem with a store: its URL, its contents or its locking."""


class UnknownSchemeError(StoreError, ValueError):
    """A store URL whose scheme segflow does not support."""


class KeyNotFoundError(StoreError, KeyError):
    """A key missing from a store."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class SequenceNotFoundError(StoreError, KeyError):
    """A sequence id not present in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompleteSequenceError(StoreError):
    """A sequence that exists but is not marked complete."""


class LockedError(StoreError):
    """A lock held by another run."""


class CheckpointError(StoreError):
    """A checkpoint or exported model that is missing, unreadable or fails its checksums."""


for _error in (
    SegflowError,
    ConfigError,
    InvalidIdError,
    StoreError,
    UnknownSchemeError,
    KeyNotFoundError,
    SequenceNotFoundError,
    IncompleteSequenceError,
    LockedError,
    CheckpointError,
):
    _error.__module__ = _PUBLIC_MODULE
