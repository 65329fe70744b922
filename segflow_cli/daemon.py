"""The command daemon: a warm process that runs ``segflow`` commands sent by the launcher.

``segflow server start`` starts it beside the Prefect server. It has Prefect, the flows and
zarr imported already (TensorFlow once a command needed it), so a command it runs pays only
for its work and its flow run: the 2-3 s a fresh process spends importing Prefect is paid
once. :mod:`segflow_cli.launch` sends it the command line, the working directory, the
environment and whether the terminal is a TTY, over a Unix socket only the user can open; the
daemon runs the command in its main thread and streams stdout, stderr and the exit code back.

One command runs at a time. A launcher that finds the daemon busy runs its command itself, so
a long ``train`` never makes a quick ``inspect`` wait. Closing the launcher (Ctrl-C) interrupts
the command, as it would in its own process.

The wire format is :mod:`segflow_cli.frames`.
"""

from __future__ import annotations

import _thread
import contextlib
import io
import json
import os
import queue
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segflow_cli.frames import read_frame, write_frame

__all__ = ["serve_forever"]

#: Environment variables a command keeps from the daemon, not the launcher: the daemon's
#: Prefect client and runtime were set up from them when it started.
DAEMON_OWNED = ("PREFECT_", "TF_", "OMP_NUM_THREADS", "MALLOC_ARENA_MAX")


class _Channel(io.RawIOBase):
    """A writable stream sending what is written as frames of one channel."""

    def __init__(self, sock: socket.socket, channel: bytes, tty: bool) -> None:
        self._sock, self._channel, self._tty = sock, channel, tty

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._tty

    def write(self, data: Any) -> int:
        payload = bytes(data)
        with contextlib.suppress(OSError):  # the launcher left: the command is interrupted
            write_frame(self._sock, self._channel, payload)
        return len(payload)


def _text(sock: socket.socket, channel: bytes, tty: bool) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.BufferedWriter(_Channel(sock, channel, tty)),
        encoding="utf-8",
        errors="replace",
        line_buffering=True,
        write_through=True,
    )


@contextlib.contextmanager
def _as_launched(request: dict[str, Any]) -> Iterator[None]:
    """The launcher's directory and environment for the block (the daemon's own after)."""
    saved_env, saved_cwd, saved_path = dict(os.environ), os.getcwd(), list(sys.path)
    theirs = {k: v for k, v in request["env"].items() if not k.startswith(DAEMON_OWNED)}
    ours = {k: v for k, v in saved_env.items() if k.startswith(DAEMON_OWNED)}
    os.environ.clear()
    os.environ.update(theirs | ours)
    os.chdir(request["cwd"])
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def _run(request: dict[str, Any], sock: socket.socket) -> int:
    """Run the command of ``request`` with its output sent to ``sock``; return its exit code."""
    from segflow_cli.app import app

    tty = request.get("tty") or {}
    out, err = _text(sock, b"o", bool(tty.get("o"))), _text(sock, b"e", bool(tty.get("e")))
    code = 0
    with _as_launched(request), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app(args=request["argv"], prog_name="segflow", standalone_mode=True)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except KeyboardInterrupt:
            code = 130
        except Exception:  # noqa: BLE001  (a bug: its traceback goes to the launcher, as it would)
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            out.flush()
            err.flush()
    return code


def _interrupt_when_closed(sock: socket.socket, done: threading.Event) -> None:
    """Interrupt the running command (as Ctrl-C would) when the launcher goes away."""
    with contextlib.suppress(OSError):
        if sock.recv(1) == b"" and not done.is_set():
            _thread.interrupt_main()


def _listen(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the user only: commands run with the daemon owner's rights
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(8)
    return server


def _accept(server: socket.socket, busy: threading.Lock, jobs: queue.Queue[Any]) -> None:
    """Hand each launcher's request to the main thread, or answer ``b`` while one runs."""
    while True:
        conn, _ = server.accept()
        conn.settimeout(5.0)  # a launcher that never sends its request is dropped
        try:
            frame = read_frame(conn)
        except OSError:
            frame = None
        if frame is None or frame[0] != b"r":
            conn.close()
            continue
        conn.settimeout(None)
        if not busy.acquire(blocking=False):
            with contextlib.suppress(OSError):
                write_frame(conn, b"b", b"")
            conn.close()
            continue
        jobs.put((conn, json.loads(frame[1])))


def serve_forever(path: Path) -> None:
    """Accept launchers on the Unix socket ``path`` and run their commands, one at a time,
    in this (the main) thread."""
    server = _listen(path)
    busy = threading.Lock()
    jobs: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_accept, args=(server, busy, jobs), daemon=True).start()
    while True:
        try:
            conn, request = jobs.get()
        except KeyboardInterrupt:  # a late interrupt of a command that had already ended
            continue
        done = threading.Event()
        threading.Thread(target=_interrupt_when_closed, args=(conn, done), daemon=True).start()
        code: int | None = None
        try:
            code = _run(request, conn)
        except KeyboardInterrupt:
            pass
        finally:
            done.set()
            # Free before the exit code goes out: a launcher that gets it may send the next
            # command at once, and must not find the daemon still busy with this one.
            busy.release()
            with contextlib.suppress(OSError):
                if code is not None:
                    write_frame(conn, b"x", str(code).encode())
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def _warm() -> None:
    """Import what every command needs, before the first one arrives."""
    import flows.ingest  # noqa: F401  (Prefect, the flows, zarr)
    import segflow_cli.app  # noqa: F401


def main() -> None:
    """``python -m segflow_cli.daemon SOCKET``: warm up, then serve forever."""
    path = Path(sys.argv[1])
    _warm()
    serve_forever(path)


if __name__ == "__main__":
    main()
