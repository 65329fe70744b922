"""Running ``segflow`` as a user does: a fresh process, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    """An environment with no Prefect configured, homes under ``tmp``, and ``extra``."""
    drop = ("PREFECT_", "SEGFLOW_DEBUG", "SEGFLOW_SERVER_HOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return env | {
        "PYTHONPATH": str(ROOT),
        "SEGFLOW_SERVER_HOME": str(tmp / "segflow-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "COLUMNS": "200",  # Rich wraps at the terminal's width: keep every message on one line
        **extra,
    }


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m segflow_cli ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "segflow_cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lines(text: str) -> list[str]:
    """The non-blank lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()]


def record(env: dict[str, str]) -> dict[str, int | str]:
    """What ``segflow server start`` recorded."""
    data: dict[str, int | str] = json.loads(
        (Path(env["SEGFLOW_SERVER_HOME"]) / "server.json").read_text()
    )
    return data


def pid_running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
