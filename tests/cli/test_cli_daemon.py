"""The command daemon: commands the launcher forwards run there, exactly as they would here.

A daemon process (``python -m segflow_cli.daemon SOCKET``, as ``segflow server start`` starts
it) serves this module; the launcher's :func:`~segflow_cli.launch.forward` is called in this
process, so each test knows the daemon, not a fallback, ran the command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from segflow_cli.frames import read_frame, write_frame
from segflow_cli.launch import forward, socket_path
from tests.cli.cli_helpers import cli_env, run_cli


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running daemon in a temporary server home (no Prefect server: none of these commands
    runs a flow); yields the home."""
    home = tmp_path_factory.mktemp("daemon-home")
    env = cli_env(home) | {"SEGFLOW_SERVER_HOME": str(home)}
    path = home / "commands.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "segflow_cli.daemon", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not path.exists():
            assert process.poll() is None, "the daemon exited while warming up"
            assert time.monotonic() < deadline, "the daemon did not open its socket in 120 s"
            time.sleep(0.1)
        yield home
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def via_daemon(daemon: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This test's launcher finds the daemon, in ``tmp_path`` as its working directory."""
    monkeypatch.setenv("SEGFLOW_SERVER_HOME", str(daemon))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_command_in_the_daemon_writes_what_it_writes_here(
    via_daemon: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    args = ["synth", "csv", "out", "--count", "2", "--rows", "50", "--features", "3"]
    assert forward(args) == 0
    printed = capfd.readouterr().out.split()
    # Relative paths are the launcher's: the files are under its working directory.
    assert sorted(printed) == sorted(str(Path("out") / p.name) for p in Path("out").iterdir())
    here = run_cli([*args[:2], "here", *args[3:]], cli_env(via_daemon), via_daemon)
    assert here.returncode == 0, here.stderr
    for name in os.listdir("out"):
        assert (via_daemon / "out" / name).read_bytes() == (via_daemon / "here" / name).read_bytes()


def test_errors_keep_their_one_line_and_exit_codes(
    via_daemon: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert forward(["inspect", "--store", "bogus://x", "--json"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bogus" in err[0]
    assert forward(["ingest"]) == 2  # a usage error, as Click reports it
    assert "Missing argument" in capfd.readouterr().err


def test_the_launchers_environment_reaches_the_command(
    via_daemon: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEGFLOW_DEBUG", "1")  # a traceback with the error, in the daemon too
    assert forward(["inspect", "--store", "bogus://x", "--json"]) == 1
    assert "Traceback" in capfd.readouterr().err
    monkeypatch.delenv("SEGFLOW_DEBUG")
    assert forward(["inspect", "--store", "bogus://x", "--json"]) == 1
    assert "Traceback" not in capfd.readouterr().err  # and is gone from it afterwards


def _send(daemon: Path, args: list[str], cwd: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(daemon / "commands.sock"))
    request = {"argv": args, "cwd": str(cwd), "env": dict(os.environ), "tty": {}}
    write_frame(conn, b"r", __import__("json").dumps(request).encode())
    return conn


def test_a_busy_daemon_sends_the_command_back_and_an_interrupt_stops_its_command(
    via_daemon: Path, daemon: Path
) -> None:
    slow = ["synth", "videos", "v", "--count", "40", "--frames", "200", "--size", "96"]
    conn = _send(daemon, slow, via_daemon)
    time.sleep(1.0)  # the daemon has taken it
    assert forward(["synth", "csv", "quick", "--count", "1", "--rows", "5"]) is None
    conn.close()  # Ctrl-C in the first launcher
    deadline = time.monotonic() + 60
    while (code := forward(["synth", "csv", "quick", "--count", "1", "--rows", "5"])) is None:
        assert time.monotonic() < deadline, "the interrupted command kept the daemon busy"
        time.sleep(0.2)
    assert code == 0
    assert len(list((via_daemon / "v").glob("*.mp4"))) < 40  # it stopped part-way


def test_a_stale_socket_means_running_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_SERVER_HOME", str(tmp_path))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path()))
    stale.close()  # the file stays, nothing listens
    assert forward(["synth", "csv", "x"]) is None


def test_frames_survive_any_payload_size() -> None:
    a, b = socket.socketpair()
    with a, b:
        payload = os.urandom(300_000)  # more than a socket buffer: the reader gets it in parts
        writer = threading.Thread(target=write_frame, args=(a, b"o", payload))
        writer.start()
        assert read_frame(b) == (b"o", payload)
        writer.join()
