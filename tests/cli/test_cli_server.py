"""``segflow server start|status|stop`` and commands that reuse the server it started.

One server for the module (``local_server``, started by ``segflow server start`` in a temporary
home); the last test stops it. Errors raised inside flow runs are checked here, where flow runs
are quick: one line on the terminal, the run Failed on the server with the message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from tests.cli.cli_helpers import lines, pid_running, record, run_cli
from tests.cli.conftest import LocalServer

#: Runs a command, then says on stderr whether it imported TensorFlow.
PROBE = """
import sys
from segflow_cli.app import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def _flow_runs(api: str, flow_name: str) -> list[dict]:
    body = {"flows": {"name": {"any_": [flow_name]}}, "sort": "EXPECTED_START_TIME_DESC"}
    response = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    runs: list[dict] = response.json()
    return runs


def test_status_prints_the_ui_address(local_server: LocalServer) -> None:
    result = run_cli(["server", "status"], local_server.env, local_server.workdir)
    ui = local_server.api.removesuffix("/api")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"UI {ui} ") and result.stdout.strip().endswith("answers")
    assert str(record(local_server.env)["prefect_home"]).endswith("segflow-home/prefect")


def test_start_again_reuses_the_running_server(local_server: LocalServer) -> None:
    result = run_cli(["server", "start"], local_server.env, local_server.workdir)
    assert result.returncode == 0 and "already running" in result.stderr
    assert int(record(local_server.env)["pid"]) == local_server.pid


def test_ingest_runs_on_the_server_without_tensorflow(
    local_server: LocalServer, tmp_path: Path
) -> None:
    np.save(tmp_path / "tiny.npy", np.arange(64, dtype="float32").reshape(16, 4))
    args = ["ingest", "tiny.npy", "--store", "store", "--json"]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=local_server.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert '"written": 1' in result.stdout.replace(" ", "").replace('":', '": ')
    assert "tensorflow imported: False" in result.stderr
    assert "note:" not in result.stderr  # a server was there: no temporary one
    runs = _flow_runs(local_server.api, "segflow-ingest")
    assert runs and runs[0]["state"]["type"] == "COMPLETED"


def test_an_error_in_a_flow_run_is_one_line_and_the_run_failed(
    local_server: LocalServer, tmp_path: Path
) -> None:
    result = run_cli(["ingest", "missing.mp4", "--store", "s"], local_server.env, tmp_path)
    assert result.returncode == 1
    assert lines(result.stderr) == [
        "error: Source 'missing.mp4' matched nothing: expected an existing file, a directory "
        "holding sources, or a glob matching some."
    ]
    failed = _flow_runs(local_server.api, "segflow-ingest")[0]
    assert failed["state"]["type"] == "FAILED" and "missing.mp4" in failed["state"]["message"]


def test_a_bad_store_url_in_a_flow_run_is_one_line(
    local_server: LocalServer, tmp_path: Path
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 2), dtype="float32"))
    result = run_cli(["ingest", "x.npy", "--store", "bogus://x"], local_server.env, tmp_path)
    assert result.returncode == 1 and len(lines(result.stderr)) == 1, result.stderr
    assert "Unknown store URL scheme 'bogus' in 'bogus://x'" in result.stderr


def test_an_unknown_model_tag_is_one_line(local_server: LocalServer, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 2), dtype="float32"))
    assert run_cli(["ingest", "x.npy", "--store", "s"], local_server.env, tmp_path).returncode == 0
    args = ["predict", "--store", "s", "--model-tag", "nope"]
    result = run_cli(args, local_server.env, tmp_path)
    assert result.returncode == 1 and len(lines(result.stderr)) == 1, result.stderr
    assert result.stderr.startswith("error: No model for tag 'nope'")


def test_debug_shows_the_flow_run_traceback(local_server: LocalServer, tmp_path: Path) -> None:
    args = ["--debug", "ingest", "missing.mp4", "--store", "s"]
    result = run_cli(args, local_server.env, tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    # --debug shows Prefect's own output too: its events worker may log after our line.
    ours = [line for line in lines(result.stderr) if "EventsWorker" not in line]
    assert ours[-1].startswith("error: Source 'missing.mp4' matched nothing")


def test_stop_stops_what_start_started(local_server: LocalServer) -> None:
    """Runs last: the server is gone afterwards."""
    result = run_cli(["server", "stop"], local_server.env, local_server.workdir)
    assert result.returncode == 0 and f"pid {local_server.pid}" in result.stderr
    assert not pid_running(local_server.pid)
    status = run_cli(["server", "status"], local_server.env, local_server.workdir)
    assert status.returncode == 1 and "no local server" in status.stderr
    again = run_cli(["server", "stop"], local_server.env, local_server.workdir)
    assert again.returncode == 0 and "no local server running" in again.stderr
