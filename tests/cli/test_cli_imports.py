"""The command line imports what a command needs when it runs; it finds a server to reuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segflow_cli import common, server
from storage.urls import DEFAULT_STORE
from tests.cli.cli_helpers import cli_env

#: Runs the CLI with ARGS in this process, then prints the heavy modules it imported.
PROBE = """
import json, sys
from segflow_cli.app import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
heavy = ("tensorflow", "keras", "prefect", "zarr", "flows.deployments")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def _imported(args: list[str], tmp_path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=cli_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return imported


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["--help"], []),  # the app alone: no Prefect, zarr or TensorFlow
        (["train", "--help"], []),
        (["server", "status"], []),
        (["inspect", "--store", "s", "--json"], ["zarr"]),  # reads the store, nothing else
    ],
)
def test_commands_import_only_what_they_need(
    tmp_path: Path, args: list[str], allowed: list[str]
) -> None:
    assert _imported(args, tmp_path) == allowed


def test_the_default_store_is_the_storage_layers() -> None:
    assert common.DEFAULT_STORE == DEFAULT_STORE


def test_connect_prefers_a_configured_api(tmp_path: Path) -> None:
    # A fresh interpreter, as a command is: in this one a test harness may hold Prefect's
    # settings (its own server), which rightly win over the environment.
    env = {
        **os.environ,
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "SEGFLOW_SERVER_HOME": str(tmp_path),
    }
    code = "from segflow_cli import server; print(server.connect())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "http://127.0.0.1:9/api", out.stderr


def test_a_stale_record_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(server.HOME_ENV, str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(server, "configured_api_url", lambda: None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "server.json").write_text(
        json.dumps({"pid": dead.pid, "port": 9, "prefect_home": str(tmp_path)})
    )
    assert server.read_record() is None
    assert server.connect() is None


def test_the_temporary_server_note_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(server, "configured_api_url", lambda: None)
    server.note_temporary_server()
    note = capsys.readouterr().err
    assert len(note.strip().splitlines()) == 1 and "segflow server start" in note
    monkeypatch.setattr(server, "configured_api_url", lambda: "http://127.0.0.1:9/api")
    server.note_temporary_server()
    assert capsys.readouterr().err == ""
