"""Without any Prefect server, a command starts the temporary one while it imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segflow_cli import tempserver
from segflow_cli.tempserver import TemporaryServer
from storage import open_store
from storage.sequences import SequenceRepository
from tests.cli.cli_helpers import cli_env, lines, run_cli

APP = "prefect.server.api.server:create_app"


def _servers_of(prefect_home: Path) -> list[int]:
    """Pids of Prefect API servers running with ``prefect_home`` as their home."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if APP not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if f"PREFECT_HOME={prefect_home}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_a_command_without_a_server_runs_and_leaves_no_server_behind(tmp_path: Path) -> None:
    np.save(tmp_path / "walk.npy", np.random.default_rng(0).normal(size=(30, 3)).astype("f4"))
    home = tmp_path / "prefect-home"
    env = cli_env(tmp_path, PREFECT_HOME=str(home), SEGFLOW_NO_DAEMON="1")

    result = run_cli(["ingest", "walk.npy", "--store", "store", "--json"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    # One line of note on stderr (how to make commands faster), nothing from the server.
    assert len(lines(result.stderr)) == 1 and "segflow server start" in result.stderr
    repo = SequenceRepository(open_store(str(tmp_path / "store")))
    assert repo.ids() == ["walk"]
    assert _servers_of(home) == []  # stopped with the command


def test_nothing_starts_once_prefect_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect  # noqa: F401  (as in a test process or the daemon)

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert tempserver.start_early() is None
    assert "PREFECT_API_URL" not in os.environ
    tempserver.wait_until_ready()  # nothing to wait for


def _server_of(code: str) -> TemporaryServer:
    log = (Path(os.environ.get("TMPDIR", "/tmp")) / f"tempserver-{os.getpid()}.log").open("w+b")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    return TemporaryServer(port=9, process=process, log=log)


def test_a_server_that_dies_while_starting_is_one_clear_error() -> None:
    server = _server_of("print('address already in use'); raise SystemExit(3)")
    server.process.wait()
    with pytest.raises(RuntimeError, match="exited with code 3 before it answered: address"):
        server.wait(timeout=30)
    server.stop()


def test_a_server_that_never_answers_times_out_naming_the_setting() -> None:
    server = _server_of("import time; time.sleep(30)")
    with pytest.raises(RuntimeError, match=r"within 0 s .*STARTUP_TIMEOUT_SECONDS"):
        server.wait(timeout=0.2)
    server.stop()
    assert server.process.poll() is not None
