"""Prefect's temporary server, started while the command is still importing.

A command with no Prefect server to talk to gets Prefect's temporary one: Prefect starts it
at the flow run's first API call, after the command has imported Prefect and the flows
(about 2 s), and then waits for it (about 10-15 s on 2 cores). Both are mostly CPU in separate
processes, so the command starts the same server itself, in the same way Prefect does
(``uvicorn`` on ``prefect.server.api.server:create_app``, UI off, a free port on 127.0.0.1),
before it imports Prefect, points ``PREFECT_API_URL`` at it, and waits for its health check
only when the flow is about to run. The server stops when the command exits, as Prefect's
own does.

Only for a process that has not imported Prefect yet: Prefect reads ``PREFECT_API_URL`` once,
when it is first imported.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import IO

from segflow_cli.server import healthy

__all__ = ["TemporaryServer", "start_early", "started_early", "wait_until_ready"]

#: Prefect's own limit on the temporary server's start, read from its setting's variable.
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prefect_dir() -> str:
    spec = find_spec("prefect")  # its location, without importing it (that is the point)
    if spec is None or spec.origin is None:
        raise RuntimeError("prefect is not installed")
    return str(Path(spec.origin).parent.parent)


@dataclass
class TemporaryServer:
    """A Prefect API server this process started and stops at exit.

    Args:
        port: Where it listens, on 127.0.0.1.
        process: The ``uvicorn`` process serving Prefect's API.
    """

    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = None
    ready: bool = field(default=False)

    @property
    def api_url(self) -> str:
        """The URL Prefect's client uses (``PREFECT_API_URL``).

        >>> TemporaryServer(4200, None).api_url  # type: ignore[arg-type]
        'http://127.0.0.1:4200/api'
        """
        return f"http://127.0.0.1:{self.port}/api"

    @classmethod
    def spawn(cls) -> TemporaryServer:
        """Start the server as Prefect's ``SubprocessASGIServer`` does; do not wait for it."""
        port = _free_port()
        command = [sys.executable, "-m", "uvicorn", "--app-dir", _prefect_dir(), "--factory"]
        command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
        env = os.environ | {
            "PREFECT_UI_ENABLED": "0",  # as Prefect's temporary server: API only
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        # Its output goes to a file: stopping it at exit mid-request prints tracebacks that are
        # not the command's; its last lines go into the error if it dies while starting.
        log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the server; see stop)
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        server = cls(port, process, log)
        atexit.register(server.stop)
        return server

    def wait(self, timeout: float) -> None:
        """Block until the API answers its health check.

        Raises:
            RuntimeError: If the server exited, or did not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.ready:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Prefect's temporary server exited with code {self.process.returncode} "
                    f"before it answered: {self._last_line()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Prefect's temporary server did not answer within {timeout:.0f} s "
                    f"(set {STARTUP_TIMEOUT_ENV} to wait longer)."
                )
            self.ready = healthy(self.api_url, timeout=1.0)
            if not self.ready:
                time.sleep(0.05)

    def _last_line(self) -> str:
        if self.log is None:
            return "(no output)"
        self.log.seek(0)
        lines = [line for line in self.log.read().decode(errors="replace").splitlines() if line]
        return lines[-1].strip() if lines else "(no output)"

    def stop(self) -> None:
        """Stop the server (at exit): terminate, then kill if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


_early: TemporaryServer | None = None


def start_early() -> TemporaryServer | None:
    """Start the temporary server now and point Prefect at it, if Prefect is not imported yet.

    Returns:
        The server, or None when Prefect is already imported (it would not see the URL).
    """
    global _early
    if _early is None and "prefect" not in sys.modules and not os.environ.get("PREFECT_API_URL"):
        _early = TemporaryServer.spawn()
        os.environ["PREFECT_API_URL"] = _early.api_url
    return _early


def started_early() -> bool:
    """Whether this process started a temporary server with :func:`start_early`."""
    return _early is not None


def wait_until_ready() -> None:
    """Wait for the server :func:`start_early` started (no-op when there is none)."""
    if _early is not None:
        _early.wait(float(os.environ.get(STARTUP_TIMEOUT_ENV) or 90))
