"""The exceptions segflow raises.

Every error is a :class:`SegflowError`, so callers can catch the general one or a specific
one::

    SegflowError
    ├── ConfigError (ValueError)          a parameter outside what is accepted
    │   └── InvalidIdError                a sequence id or model tag that breaks the pattern
    ├── SourceError                       an input that cannot be ingested
    │   └── SourceNotFoundError (FileNotFoundError)
    └── StoreError                        a problem with the store itself
        ├── UnknownSchemeError (ValueError)
        ├── KeyNotFoundError (KeyError)
        ├── SequenceNotFoundError (KeyError)
        ├── IncompleteSequenceError
        ├── LockedError                   another run holds the lock
        └── CheckpointError               a checkpoint or exported model missing or corrupt

The root and the store's errors are defined at the bottom of the layers, in
:mod:`storage.errors` (the storage layer raises them and imports nothing from segflow); this
module re-exports them and adds the errors of sources.
"""

from __future__ import annotations

from storage.errors import (
    CheckpointError,
    ConfigError,
    IncompleteSequenceError,
    InvalidIdError,
    KeyNotFoundError,
    LockedError,
    SegflowError,
    SequenceNotFoundError,
    StoreError,
    UnknownSchemeError,
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "IncompleteSequenceError",
    "InvalidIdError",
    "KeyNotFoundError",
    "LockedError",
    "SegflowError",
    "SequenceNotFoundError",
    "SourceError",
    "SourceNotFoundError",
    "StoreError",
    "UnknownSchemeError",
]


class SourceError(SegflowError):
    """An input source that cannot be read or ingested; the message names the source."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A source path, glob or prefix that matched nothing."""
