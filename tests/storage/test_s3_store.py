"""The S3 store passes the store contract against a local moto server, plus S3-only checks."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

import storage.s3
from segflow.errors import ConfigError, StoreError
from storage import open_store
from storage.s3 import ENDPOINT_ENV, S3Store, parse_s3_url
from tests.s3server import S3Server
from tests.storage.contract import StoreContract


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, s3_store_url: str, s3_storage_options: dict[str, Any]) -> S3Store:
        return S3Store(s3_store_url, storage_options=s3_storage_options)


class TestS3StoreAtBucketRoot(StoreContract):
    """A store without a prefix: store keys are the bucket's object keys."""

    @pytest.fixture
    def store(self, s3_moto_server: S3Server, s3_storage_options: dict[str, Any]) -> S3Store:
        bucket = s3_moto_server.create_bucket(f"root-{uuid.uuid4().hex[:16]}")
        return S3Store(f"s3://{bucket}", storage_options=s3_storage_options)


@pytest.fixture
def store(s3_store_url: str, s3_storage_options: dict[str, Any]) -> S3Store:
    return S3Store(s3_store_url, storage_options=s3_storage_options)


# -- URLs and options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),  # bucket root
        ("s3://bucket/", ("bucket", "")),  # trailing slash ignored
        ("s3://bucket/a/b/", ("bucket", "a/b")),  # nested prefix
        ("S3A://bucket/p", ("bucket", "p")),  # Hadoop-style scheme, any case
    ],
)
def test_parse_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "s3://",  # no bucket
        "s3:///prefix",  # no bucket
        "s3://bucket/a/../b",  # '..' in the prefix
        "s3://bucket/a//b",  # empty part in the prefix
        "gs://bucket/p",  # not S3
    ],
)
def test_invalid_s3_url_is_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        S3Store(url, storage_options={})


def test_url_is_normalised() -> None:
    assert S3Store("s3://bucket/a/b/", storage_options={}).url == "s3://bucket/a/b"


def test_open_store_returns_s3_store(s3_store_url: str, s3_storage_options: dict[str, Any]) -> None:
    store = open_store(s3_store_url, s3_storage_options)
    assert isinstance(store, S3Store)
    store.write_bytes("k", b"v")
    assert open_store(s3_store_url, s3_storage_options).read_bytes("k") == b"v"


def test_endpoint_from_environment(
    s3_server: str, s3_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials and region come from the AWS_* variables the s3_server fixture sets.
    monkeypatch.setenv(ENDPOINT_ENV, s3_server)
    store = S3Store(s3_store_url)
    store.write_bytes("k", b"v")
    assert store.read_bytes("k") == b"v"


# -- failures --------------------------------------------------------------------------------


def test_missing_bucket_is_store_error_naming_url(s3_storage_options: dict[str, Any]) -> None:
    store = S3Store("s3://no-such-bucket-segflow/p", storage_options=s3_storage_options)
    with pytest.raises(StoreError, match=r"s3://no-such-bucket-segflow/p.*does not exist"):
        store.read_bytes("k")
    with pytest.raises(StoreError, match="no-such-bucket-segflow"):
        store.zarr_store()


def test_unreachable_endpoint_is_store_error_naming_url() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "key": "testing",
        "secret": "testing",
        "config_kwargs": {"retries": {"max_attempts": 1}},  # fail fast
    }
    store = S3Store("s3://bucket/p", storage_options=options)
    with pytest.raises(StoreError, match=rf"s3://bucket/p.*127\.0\.0\.1:{port}"):
        store.exists("k")


# -- S3-specific behaviour -------------------------------------------------------------------


def test_listing_and_deleting_page_through_many_objects(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.s3, "_LIST_PAGE", 2)
    monkeypatch.setattr(storage.s3, "_DELETE_BATCH", 2)
    keys = [f"p/{i}" for i in range(5)]
    for key in keys:
        store.write_bytes(key, b"x")
    assert store.list("p") == keys
    store.delete_prefix("p")
    assert store.list() == []


def test_move_prefix_copies_metadata_last_deepest_first(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ["s/zarr.json", "s/a/zarr.json", "s/a/c/0", "s/a/c/1", "s/b"]:
        store.write_bytes(key, key.encode())
    copied: list[str] = []
    real_copy = store._fs.copy

    def recording_copy(source: Any, target: Any, **kwargs: Any) -> None:
        copied.extend(target if isinstance(target, list) else [target])
        real_copy(source, target, **kwargs)

    monkeypatch.setattr(store._fs, "copy", recording_copy)
    store.move_prefix("s", "d")
    relative = [path.split("/d/", 1)[1] for path in copied]
    assert sorted(relative[:3]) == ["a/c/0", "a/c/1", "b"]
    assert relative[3:] == ["a/zarr.json", "zarr.json"]


def _client_error(code: str) -> OSError:
    """An OSError as s3fs raises it, caused by a botocore error with ``code``."""
    error = OSError(f"simulated {code}")
    error.__cause__ = ClientError({"Error": {"Code": code, "Message": code}}, "PutObject")
    return error


def test_create_exclusive_retries_a_conditional_conflict(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = store._fs.call_s3
    conflicts = iter([_client_error("ConditionalRequestConflict")])

    def call_s3(method: str, **kwargs: Any) -> Any:
        if method == "put_object" and (error := next(conflicts, None)) is not None:
            raise error
        return real_call(method, **kwargs)

    monkeypatch.setattr(storage.s3.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(store._fs, "call_s3", call_s3)
    assert store.create_exclusive("lock", b"a") is True
    assert store.read_bytes("lock") == b"a"


def test_create_exclusive_without_server_support_is_best_effort(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = store._fs.call_s3

    def call_s3(method: str, **kwargs: Any) -> Any:
        if kwargs.get("IfNoneMatch"):
            raise _client_error("NotImplemented")
        return real_call(method, **kwargs)

    monkeypatch.setattr(store._fs, "call_s3", call_s3)
    assert store.create_exclusive("lock", b"a") is True
    assert store.create_exclusive("lock", b"b") is False
    assert store.read_bytes("lock") == b"a"
