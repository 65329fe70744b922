"""open_store: from a path or URL to the right store."""

from __future__ import annotations

from pathlib import Path

import pytest

from segflow.errors import ConfigError, StoreError, UnknownSchemeError
from storage import LocalStore, open_store


@pytest.mark.parametrize("url", ["ftp://x", "gs://bucket/prefix", "http://host/path"])
def test_unknown_scheme(url: str) -> None:
    with pytest.raises(UnknownSchemeError, match="scheme") as info:
        open_store(url)
    assert isinstance(info.value, StoreError)
    assert isinstance(info.value, ValueError)


def test_empty_url_is_config_error() -> None:
    with pytest.raises(ConfigError, match="''"):
        open_store("")


def test_file_url_opens_local_store(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/root")
    assert isinstance(store, LocalStore)
    store.write_bytes("a/k", b"v")
    assert (tmp_path / "root" / "a" / "k").read_bytes() == b"v"


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "PathLike"])
def test_plain_path_opens_local_store(tmp_path: Path, as_path: bool) -> None:
    root = tmp_path / "root"
    store = open_store(root if as_path else str(root))
    assert isinstance(store, LocalStore)
    assert store.root == root
