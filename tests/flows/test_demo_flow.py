"""The demo flow runs end to end (tiny sizes: mechanics, not accuracy) and publishes its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.demo import demo
from segflow.config import DemoParams
from segflow.demo import DemoResult

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_demo_flow_writes_everything(tmp_path: Path) -> None:
    params = DemoParams(
        workdir=str(tmp_path / "demo"),
        # The fewest videos allowed (one held out), two segments each: every stage runs.
        videos=4,
        frames=16,
        size=16,
        epochs=1,
        lanes=2,
        segment_length=8,
        units=2,
    )
    result = demo(params)
    assert isinstance(result, DemoResult)
    metrics = result.to_json()["metrics"]
    assert set(metrics) == {
        "carried_val",
        "reset_val",
        "carried_pred",
        "windowed_val",
        "gap_points",
    }
    assert 0.0 <= result.metrics.carried_pred <= 1.0
    paths = result.paths
    assert Path(paths.plot).stat().st_size > 10_000
    assert any(Path(paths.tensorboard).rglob("events.out.tfevents.*"))
    assert (Path(paths.store) / "predictions" / "demo-carried").is_dir()
