"""The ``segflow`` executable: hand the command to the warm daemon, or run it here.

With ``segflow server start`` running, its command daemon (:mod:`segflow_cli.daemon`) has
Prefect and the flows imported already; a command sent there answers in about the time of its
work. Without one (or when it is busy, or told not to with ``SEGFLOW_NO_DAEMON=1``, or when
``PREFECT_API_URL`` names another server), the command runs in this process as before. Only
the standard library is imported until then, so forwarding costs a few milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

from segflow_cli.frames import read_frame, write_frame

__all__ = ["FORWARDED", "forward", "main", "socket_path"]

#: Commands the daemon runs (``server`` and ``serve`` manage processes: they run here).
FORWARDED = frozenset(
    {"ingest", "inspect", "train", "predict", "evaluate", "backfill", "demo", "synth"}
)
#: Set to 1 to run every command in its own process.
NO_DAEMON_ENV = "SEGFLOW_NO_DAEMON"


def socket_path() -> Path:
    """The daemon's socket, in the local server's home (``$SEGFLOW_SERVER_HOME``)."""
    home = os.environ.get("SEGFLOW_SERVER_HOME") or Path.home() / ".segflow"
    return Path(home) / "commands.sock"


def _command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _wanted(argv: list[str]) -> bool:
    if os.environ.get(NO_DAEMON_ENV, "") not in ("", "0"):
        return False
    if os.environ.get("PREFECT_API_URL"):  # the user's own server: this process talks to it
        return False
    return _command(argv) in FORWARDED and socket_path().exists()


def forward(argv: list[str]) -> int | None:
    """Run ``segflow ARGV`` in the daemon; its exit code, or None if it cannot take it."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(socket_path()))
    except OSError:  # not running (a stale socket), or still warming up
        conn.close()
        return None
    env = dict(os.environ)
    if sys.stderr.isatty() and "COLUMNS" not in env:  # Rich sizes its bars from it
        env["COLUMNS"] = str(shutil.get_terminal_size().columns)
    request = {
        "argv": argv,
        "cwd": os.getcwd(),
        "env": env,
        "tty": {"o": sys.stdout.isatty(), "e": sys.stderr.isatty()},
    }
    payload = json.dumps(request).encode()
    with conn:
        try:
            write_frame(conn, b"r", payload)
            return _relay(conn)
        except KeyboardInterrupt:  # closing the connection interrupts the command there
            return 130


def _relay(conn: socket.socket) -> int | None:
    streams = {b"o": sys.stdout.buffer, b"e": sys.stderr.buffer}
    started = False
    while True:
        frame = read_frame(conn)
        if frame is None:
            if not started:
                return None
            sys.stderr.write("error: the segflow daemon stopped while running the command\n")
            return 1
        channel, payload = frame
        if channel == b"b":  # busy with another command
            return None
        started = True
        if channel == b"x":
            return int(payload)
        streams[channel].write(payload)
        streams[channel].flush()


def main() -> None:
    """Entry point of the ``segflow`` executable."""
    argv = sys.argv[1:]
    if _wanted(argv):
        code = forward(argv)
        if code is not None:
            sys.exit(code)
    from segflow_cli.app import app

    app()
