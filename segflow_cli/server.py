"""``segflow server start|stop|status``: a local Prefect server that every command reuses.

Without a server, each command that runs a flow starts Prefect's temporary server and stops it
again (about 10 s on a 2-core machine). ``segflow server start`` starts one in the background
on 127.0.0.1, records its pid and address under :func:`server_home`, and :func:`connect` points
every later command at it. Prefect configured by the user wins: with ``PREFECT_API_URL`` set,
commands use that server; with ``PREFECT_HOME`` set, the local server keeps its database there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from segflow_cli.common import console, fail

__all__ = [
    "HOME_ENV",
    "ServerRecord",
    "configured_api_url",
    "connect",
    "healthy",
    "note_temporary_server",
    "read_record",
    "server_app",
    "server_home",
]

#: The directory of segflow's local server (its record, log and, by default, its database).
HOME_ENV = "SEGFLOW_SERVER_HOME"
DEFAULT_PORT = 4200
#: Seconds ``start`` waits for the server to answer by default: 5-14 s measured, more the first
#: time (it creates its database) and on a busy machine (100 s seen with a load of 6 on 2 cores).
START_TIMEOUT = 180.0
#: Seconds ``stop`` waits after SIGTERM before it kills what is left.
STOP_TIMEOUT = 20.0

server_app = typer.Typer(help="A local Prefect server that every command reuses (faster runs).")


@dataclass(frozen=True)
class ServerRecord:
    """What ``segflow server start`` started: enough to find, reach and stop it.

    >>> ServerRecord(pid=7, port=4300, prefect_home="/h").api
    'http://127.0.0.1:4300/api'
    """

    pid: int
    port: int
    prefect_home: str
    daemon_pid: int | None = None

    @property
    def ui(self) -> str:
        """The UI's address."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        """The API's address (what ``PREFECT_API_URL`` is set to)."""
        return f"{self.ui}/api"


def server_home() -> Path:
    """``$SEGFLOW_SERVER_HOME``, or ``~/.segflow``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".segflow")


def _record_path() -> Path:
    return server_home() / "server.json"


def read_record() -> ServerRecord | None:
    """The recorded server, if ``start`` recorded one and its process still runs."""
    try:
        record = ServerRecord(**json.loads(_record_path().read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return record if _running(record.pid) else None


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live Prefect process (not a zombie, not a reused pid)."""
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            return state != "Z" and b"prefect" in (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)  # not Linux: the pid exists
    except OSError:
        return False
    return True


def healthy(api: str, timeout: float = 2.0) -> bool:
    """Whether the Prefect API at ``api`` answers its health check."""
    import urllib.request  # 0.1-0.2 s of imports (http, email, ssl) a bare --help never needs

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: no proxy
    try:
        with direct.open(f"{api}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:  # URLError is an OSError
        return False


def connect() -> str | None:
    """Point this process's Prefect client at a server; return its API URL.

    ``PREFECT_API_URL`` (set by the user, or by Prefect's test harness in this process) wins;
    otherwise the server ``segflow server start`` recorded, if it answers. Call before Prefect
    is imported: it reads its settings at import.

    Returns:
        The API URL used, or None: a flow run will start Prefect's temporary server.
    """
    configured = configured_api_url()
    if configured:
        return configured
    record = read_record()
    if record is not None and healthy(record.api, timeout=1.0):
        os.environ["PREFECT_API_URL"] = record.api
        # Client files (profiles, results) beside the server's, unless the user chose a home.
        os.environ.setdefault("PREFECT_HOME", record.prefect_home)
        return record.api
    return None


def configured_api_url() -> str | None:
    """The API URL Prefect uses in this process, or None (its temporary server)."""
    if "prefect" not in sys.modules:
        return os.environ.get("PREFECT_API_URL") or None
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def note_temporary_server() -> None:
    """Say, in one line, that a flow run starts a temporary server, and how to avoid it."""
    from segflow_cli.tempserver import started_early

    if started_early() or configured_api_url() is None:
        console.print(
            "[dim]note: no Prefect server, so this command starts a temporary one (slow); "
            "`segflow server start` starts one that every command reuses.[/]",
            soft_wrap=True,
        )


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _server_env(prefect_home: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {
        "PREFECT_HOME": prefect_home,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),  # or the UI calls the default port's API
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # telemetry only fails offline
    }


def _spawn(port: int, prefect_home: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "prefect", "server", "start"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=_server_env(prefect_home, port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command; stopped as a group
        )


def _wait_healthy(
    process: subprocess.Popen[bytes], record: ServerRecord, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(record.api, timeout=1.0):
        if process.poll() is not None:
            _record_path().unlink(missing_ok=True)
            last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise fail(f"The Prefect server exited with {process.returncode}: {last[0]}")
        if time.monotonic() > deadline:
            raise fail(
                f"The Prefect server (pid {record.pid}) did not answer in {timeout:.0f} s: it may "
                f"still be starting (`segflow server status`); see {log}, or stop it with "
                "`segflow server stop`."
            )
        time.sleep(0.25)


PortOption = Annotated[int, typer.Option(help="Port of the API and the UI on 127.0.0.1.")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")]


@server_app.command("start")
def start(port: PortOption = DEFAULT_PORT, timeout: TimeoutOption = START_TIMEOUT) -> None:
    """Start Prefect's server in the background on 127.0.0.1; commands then use it."""
    if os.environ.get("PREFECT_API_URL"):
        raise fail(
            f"PREFECT_API_URL is set ({os.environ['PREFECT_API_URL']}): commands use that "
            "server; unset it to start segflow's local one."
        )
    running = read_record()
    if running is not None:
        console.print(f"already running: UI {running.ui} (pid {running.pid})", soft_wrap=True)
        return
    if not _port_free(port):
        raise fail(f"Port {port} of 127.0.0.1 is in use: pass another with --port.")
    home = server_home()
    home.mkdir(parents=True, exist_ok=True)
    prefect_home = os.environ.get("PREFECT_HOME") or str(home / "prefect")
    log = home / "server.log"
    process = _spawn(port, prefect_home, log)
    record = ServerRecord(pid=process.pid, port=port, prefect_home=prefect_home)
    _record_path().write_text(json.dumps(asdict(record)))
    _wait_healthy(process, record, log, timeout)
    record = replace(record, daemon_pid=_spawn_daemon(record, home))
    _record_path().write_text(json.dumps(asdict(record)))
    message = f"Prefect server running: UI {record.ui} (pid {record.pid}, log {log})"
    console.print(message, soft_wrap=True)


def _spawn_daemon(record: ServerRecord, home: Path) -> int:
    """Start the command daemon (:mod:`segflow_cli.daemon`); return its pid. Commands reach it
    as soon as it has warmed up (a few seconds); ``stop`` stops it with the server."""
    from segflow_cli.launch import socket_path

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_API_URL": record.api,
        "PREFECT_HOME": record.prefect_home,
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    with (home / "daemon.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "segflow_cli.daemon", str(socket_path())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command; stopped as a group
        ).pid


@server_app.command("status")
def status() -> None:
    """Print the local server's UI address and whether it answers (exit 1 if not running)."""
    record = read_record()
    if record is None:
        console.print("no local server (start one with `segflow server start`)", soft_wrap=True)
        raise typer.Exit(code=1)
    from segflow_cli.launch import socket_path

    answers = "answers" if healthy(record.api) else "does not answer"
    daemon = "ready" if socket_path().exists() else "not running"
    typer.echo(
        f"UI {record.ui} (API {record.api}, pid {record.pid}, commands daemon {daemon}): {answers}"
    )


@server_app.command("stop")
def stop() -> None:
    """Stop the server ``segflow server start`` started (by its recorded pid), nothing else."""
    record = read_record()
    _record_path().unlink(missing_ok=True)
    if record is None:
        console.print("no local server running")
        return
    # start() gave the server its own session: the group is the server and its children.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _running(record.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):  # whatever did not stop in time, or was left
        os.killpg(record.pid, signal.SIGKILL)
    from segflow_cli.launch import socket_path

    if record.daemon_pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.daemon_pid, signal.SIGKILL)  # it holds nothing to flush
    socket_path().unlink(missing_ok=True)
    console.print(f"stopped the Prefect server (pid {record.pid})", soft_wrap=True)
