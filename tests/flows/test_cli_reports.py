"""The CLI prints flows' typed reports from their attributes (no flow runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from segflow.demo import DemoMetrics, DemoPaths, DemoResult
from segflow_cli import commands
from segflow_cli.app import app


def test_demo_prints_metrics_and_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = DemoResult(DemoMetrics(0.9, 0.55, 0.875, 0.7), DemoPaths.under(tmp_path))

    def run_flow(flow_fn: Any, params: Any, name: str, *, expected: type) -> DemoResult:
        assert expected is DemoResult
        return result

    monkeypatch.setattr(commands, "run_flow", run_flow)
    monkeypatch.setenv("SEGFLOW_SERVER_HOME", str(tmp_path))  # no developer's server found
    output = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path)]).output
    assert "90.0%" in output and "55.0%" in output and "87.5%" in output
    assert "gap: 35.0 points" in output
    assert all(f"{what}:" in output for what in ("sources", "store", "checkpoints", "plot"))
    assert "plot.png" in output.replace("\n", "")  # the console wraps long paths
