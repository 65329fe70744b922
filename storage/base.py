"""The one storage interface segflow uses: a key/value view of a store root.

A store root holds Zarr data (sequences, predictions) and plain objects (checkpoints, locks,
run records). Keys are ``/``-separated paths relative to the root, never absolute and never
containing ``..``. Every implementation passes ``tests/storage/contract.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from storage.errors import ConfigError

if TYPE_CHECKING:
    import zarr.abc.store
    from typing_extensions import Buffer


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`ConfigError`."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(
            f"Invalid store key {key!r}: expected a relative '/'-separated path "
            f"without empty, '.' or '..' parts."
        )
    return key


class Store(ABC):
    """A store root: Zarr arrays plus small atomic objects.

    Implementations: :class:`storage.local.LocalStore` (a directory) and
    :class:`storage.s3.S3Store` (an S3 prefix through fsspec).
    """

    #: The URL the store was opened from (a path or ``s3://bucket/prefix``).
    url: str

    #: Capability: reads are plain file reads on a local disk, with no network round trip, so
    #: a reader may do them in its own thread instead of handing them to a pool.
    local_reads: ClassVar[bool] = False

    @abstractmethod
    def zarr_store(self, *, read_only: bool = False) -> zarr.abc.store.Store:
        """Return a Zarr v3 store rooted at this store's root."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the object at ``key``.

        Raises:
            KeyNotFoundError: If nothing is stored at ``key``.
        """

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically: readers see the old object or the new one."""

    def write_chunk(self, key: str, parts: Sequence[Buffer]) -> None:
        """Store the concatenation of ``parts`` at ``key``, as fast as the store allows.

        Not atomic and not flushed: a crash may leave a partial object. Use it only for chunks
        no reader looks at until a later metadata write says they are whole (beyond a
        sequence's committed length, or in a sequence not yet complete or still in staging).
        Implementations may write the parts without joining them.
        """
        self.write_bytes(key, b"".join(bytes(part) for part in parts))

    def write_many(self, objects: Mapping[str, bytes]) -> None:
        """Store each of ``objects`` (key to bytes) as :meth:`write_bytes` does.

        Each object is written atomically, but in no given order and possibly concurrently:
        callers write whatever makes them visible (a group's metadata) afterwards.
        """
        for key, data in objects.items():
            self.write_bytes(key, data)

    @abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Store ``data`` at ``key`` only if ``key`` does not exist yet.

        Returns:
            True if this call created the object, False if it already existed.
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether an object is stored at ``key``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Return every object key under ``prefix`` (recursively), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object at ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def move_prefix(self, src: str, dst: str) -> None:
        """Move every object under ``src`` to the same relative key under ``dst``.

        ``dst`` is emptied first; if nothing is under ``src``, nothing happens (``dst`` is
        kept). Objects named ``zarr.json`` are moved last, deepest first, so a reader never
        finds new metadata pointing at chunks that have not arrived. Implementations may
        override this with something faster (a directory rename).
        """
        keys = self.list(src)
        if not keys:
            return
        self.delete_prefix(dst)
        metadata_last = sorted(keys, key=lambda k: (k.endswith("zarr.json"), -k.count("/")))
        for key in metadata_last:
            self.write_bytes(dst + key[len(src) :], self.read_bytes(key))
        self.delete_prefix(src)
