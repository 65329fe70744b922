"""The local directory store passes the store contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.local import LocalStore
from tests.storage.contract import StoreContract


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalStore:
        return LocalStore(tmp_path / "root")


def test_list_ignores_partial_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("a/k", b"x")
    (tmp_path / "a" / ".k.123.partial").write_bytes(b"half")  # a writer that crashed
    assert store.list() == ["a/k"]
