"""Turning a store URL into a :class:`~storage.base.Store`."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from storage.base import Store
from storage.errors import ConfigError, UnknownSchemeError
from storage.local import LocalStore

#: Where data goes when no store is given.
DEFAULT_STORE = "./segflow-data"

_S3_SCHEMES = ("s3", "s3a")


def open_store(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Store:
    """Open the store at ``url``.

    Args:
        url: A local path, a ``file://`` URL, or ``s3://bucket[/prefix]``.
        storage_options: Options passed to the fsspec filesystem (S3 only), e.g.
            ``{"endpoint_url": "http://127.0.0.1:9000"}``; without an endpoint,
            ``SEGFLOW_S3_ENDPOINT_URL`` is used if set. Credentials come from the AWS chain
            (environment, profile, role) unless given here, as a config's
            ``resolved_options()`` gives those of its credentials block.

    Returns:
        The store.

    Raises:
        UnknownSchemeError: If the URL's scheme is neither a path, ``file`` nor ``s3``.
        ConfigError: If the URL is empty.
    """
    text = os.fspath(url)
    if not text:
        raise ConfigError("Invalid store URL '': expected a path or an s3:// URL.")
    scheme = urlparse(text).scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        return LocalStore(urlparse(text).path if scheme == "file" else text)
    if scheme in _S3_SCHEMES:
        from storage.s3 import S3Store  # s3fs is imported only when an S3 store is used

        return S3Store(text, storage_options=storage_options)
    raise UnknownSchemeError(
        f"Unknown store URL scheme {scheme!r} in {text!r}: expected a local path, file:// or s3://."
    )
