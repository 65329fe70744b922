"""A local server started by ``segflow server start`` (in a temporary home) for these tests."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.cli_helpers import cli_env, free_port, pid_running, record, run_cli


@dataclass(frozen=True)
class LocalServer:
    """The server ``segflow server start`` started, and an environment whose commands use it."""

    env: dict[str, str]
    pid: int
    api: str
    workdir: Path


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """``segflow server start --port <free>``; stopped (and checked gone) at the end."""
    tmp = tmp_path_factory.mktemp("local-server")
    port = free_port()
    env = cli_env(tmp)
    args = ["server", "start", "--port", str(port), "--timeout", "300"]
    try:
        started = run_cli(args, env, tmp, timeout=360)
        assert started.returncode == 0, started.stderr
        yield LocalServer(env, int(record(env)["pid"]), f"http://127.0.0.1:{port}/api", tmp)
    finally:
        _stop(env, tmp)


def _stop(env: dict[str, str], tmp: Path) -> None:
    """``segflow server stop``; then kill whatever it left (never leave a server behind)."""
    recorded = Path(env["SEGFLOW_SERVER_HOME"]) / "server.json"
    pid = int(record(env)["pid"]) if recorded.exists() else None
    run_cli(["server", "stop"], env, tmp, timeout=60)
    if pid is not None and pid_running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
