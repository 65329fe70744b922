"""Prefect settings for flow runs started in the calling process (the command line, benchmarks).

A deployment's runs are started by a worker or ``segflow serve`` and keep Prefect's defaults;
a run the user started from a terminal does not need what only a watched-over process does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["HEARTBEAT_ENV", "in_process_runs"]

#: The variables that set the flow-run heartbeat's frequency; one the user set wins.
HEARTBEAT_ENV = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


@contextmanager
def in_process_runs() -> Iterator[None]:
    """Flow runs started inside the block send no heartbeats (unless the user set them).

    Every flow run, each subflow too, starts a heartbeat thread and joins it when it ends;
    the thread sleeps in 1 s steps, so each run waits for up to a second: 0.8 s per flow run
    measured (a flow of one task: 2.0 s with, 1.2 s without), six runs in the demo.
    Heartbeats serve an automation that marks runs whose heartbeats stop as crashed, which
    matters for a worker's unattended runs; a command's run ends with its process, in front of
    the user.
    """
    if any(os.environ.get(name) for name in HEARTBEAT_ENV):
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
