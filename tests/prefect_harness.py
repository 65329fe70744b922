"""One temporary Prefect server for the whole session, shared by the directories that run flows.

``tests/flows/conftest.py`` and ``tests/backfill/conftest.py`` each declare a session-scoped
``prefect_server`` fixture (a fixture is visible only under its conftest's directory); both
enter :func:`shared_prefect_harness`, so Prefect's test harness starts once, with the first
user, and stops with the last one, instead of once per directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

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
