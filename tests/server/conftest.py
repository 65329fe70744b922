"""A real Prefect server on 127.0.0.1 and ``segflow serve`` against it, both started here.

Each runs in its own process group with an isolated ``PREFECT_HOME``; teardown signals the
whole group twice (a runner needs two signals to stop) and then kills it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the process group, waiting between each."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # children (flow-run subprocesses) left
        os.killpg(process.pid, signal.SIGKILL)


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass(frozen=True)
class Server:
    """A running Prefect server."""

    api: str  # http://127.0.0.1:<port>/api
    env: dict[str, str]  # environment reaching it, with an isolated PREFECT_HOME
    log: Path


def _prefect_env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),  # or the UI calls the wrong API port
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The scheduler visits deployments every 2 s instead of 60 s, so schedules show quickly.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "OMP_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``prefect server start`` on a free port of 127.0.0.1, healthy."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = _prefect_env(home, port)
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}/api", env, log)
    try:
        wait_until(lambda: _healthy(server.api, process, log), 90, "the Prefect server")
        yield server
    finally:
        stop_group(process)


def _healthy(api: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        pytest.fail(f"prefect server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class RetryBusyTransport(httpx.HTTPTransport):
    """Retries a request the server answers 503, as Prefect's own client does.

    On SQLite the server answers 503 when a write meets a locked database ("database is
    locked", SQLITE_BUSY); the transaction was rolled back, so sending it again is safe.
    """

    ATTEMPTS = 6

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self.ATTEMPTS - 1):
            response = super().handle_request(request)
            if response.status_code != 503:
                return response
            response.close()
            time.sleep(0.25 * 2**attempt)
        return super().handle_request(request)


@pytest.fixture(scope="session")
def api(prefect_api: Server) -> Iterator[httpx.Client]:
    """An HTTP client of the server's API (retrying 503s from a busy SQLite database)."""
    with httpx.Client(
        base_url=prefect_api.api, timeout=10, transport=RetryBusyTransport()
    ) as client:
        yield client
