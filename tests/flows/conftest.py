"""A temporary Prefect server for tests that run flows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.prefect_harness import shared_prefect_harness


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """Prefect's temporary server, one for every directory (tests/prefect_harness.py)."""
    with shared_prefect_harness():
        yield
