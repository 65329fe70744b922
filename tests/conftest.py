"""Shared pytest fixtures. Each section is self-contained; add new ones under their own heading."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

# The environment (PREFECT_HOME, no PREFECT_API_URL, the runtime set-up, the project root on
# sys.path) is set by the root conftest.py, which pytest loads before this file.
from tests.s3server import S3Server, start_s3_server

# --------------------------------------------------------------------------------------------
# S3: a moto server on 127.0.0.1, one bucket per session, a fresh prefix per test
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_moto_server() -> Iterator[S3Server]:
    """The running moto S3 server, with its fake AWS credentials in the environment.

    Fake credentials, so that nothing can reach a real AWS account by accident; and in the
    environment, not in ``storage_options``, because configs refuse secrets there.
    """
    with start_s3_server() as server, server.aws_environment():
        yield server


@pytest.fixture(scope="session")
def s3_server(s3_moto_server: S3Server) -> str:
    """The endpoint URL of the session's moto S3 server (``http://127.0.0.1:<port>``)."""
    return s3_moto_server.endpoint_url


@pytest.fixture(scope="session")
def s3_storage_options(s3_moto_server: S3Server) -> dict[str, Any]:
    """s3fs options reaching the moto server, without secrets (``open_store`` or configs)."""
    return s3_moto_server.storage_options


@pytest.fixture(scope="session")
def s3_bucket(s3_moto_server: S3Server) -> str:
    """A bucket created once per session."""
    return s3_moto_server.create_bucket(f"segflow-test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_store_url(s3_bucket: str) -> str:
    """A fresh, empty store URL ``s3://<bucket>/prefix-<uuid>`` (use with s3_storage_options)."""
    return f"s3://{s3_bucket}/prefix-{uuid.uuid4().hex}"


@pytest.fixture(params=["local", "s3"])
def local_or_s3_store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """An empty store, once local (under ``tmp_path``) and once on the moto S3 server."""
    from storage.local import LocalStore
    from storage.s3 import S3Store

    if request.param == "local":
        return LocalStore(tmp_path / "store")
    url: str = request.getfixturevalue("s3_store_url")
    options: dict[str, Any] = request.getfixturevalue("s3_storage_options")
    return S3Store(url, storage_options=options)
