"""One temporary Prefect server for the whole session, shared by the directories that run flows.

``tests/flows/conftest.py`` and ``tests/backfill/conftest.py`` each declare a session-scoped
``prefect_server`` fixture (a fixture is visible only under its conftest's directory); both
enter :func:`shared_prefect_harness`, so Prefect's test harness starts once, with the first
user, and stops with the last one, instead of once per directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

_users = 0
_stack = ExitStack()


@contextmanager
def shared_prefect_harness() -> Iterator[None]:
    """Prefect's ``prefect_test_harness`` (a temporary API server), started once per process.

    Nested or overlapping uses share the first one's server; it stops when the last one exits.
    """
    global _users
    if _users == 0:
        from prefect.testing.utilities import prefect_test_harness

        _stack.enter_context(prefect_test_harness(server_startup_timeout=120))
    _users += 1
    try:
        yield
    finally:
        _users -= 1
        if _users == 0:
            _stack.close()


def artifact_of_run(key: str, flow_run_id: Any) -> Any:
    """The artifact ``key`` that flow run ``flow_run_id`` created, or None."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    async def read() -> Any:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[key]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                )
            )
            return found[0] if found else None

    return asyncio.run(read())
