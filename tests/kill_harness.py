"""A child process killed with SIGKILL at known points of several training and prediction runs.

:func:`start_child` starts ``python -m tests.kill_harness`` with a :class:`KillPlan`. The
child starts each run in a thread of its own, one after the other: a run stops (sleeps) in its
``on_step`` once it has done its given number of steps and writes a marker file, and only then
does the next one start, so no two runs ever compute at once. Once every marker is there,
:func:`kill_when_stopped` kills the child with SIGKILL. One child, so one TensorFlow import,
leaves every run as a ``kill -9`` leaves it, always at the same steps: checkpoints written so
far, nothing cleaned up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

    from segflow.config import PredictParams, TrainParams
    from segflow.progress import StepEvent

ROOT = Path(__file__).resolve().parents[1]

#: Longest wait for the child to reach every stop (its TensorFlow import included).
TIMEOUT = 300.0


@dataclass(frozen=True)
class StoppedRun:
    """A run of the child and where it stops.

    Attributes:
        kind: ``train`` (:func:`segflow.training.train`) or ``predict``
            (:func:`segflow.predicting.predict`; its model must exist already).
        params: The run's parameters.
        step: The run stops once it has done this many steps (its ``on_step`` count).
    """

    kind: Literal["train", "predict"]
    params: TrainParams | PredictParams
    step: int

    def to_json(self) -> dict[str, object]:
        """The run as JSON for the child."""
        return {"kind": self.kind, "params": self.params.model_dump(mode="json"), "step": self.step}


@dataclass(frozen=True)
class KillPlan:
    """The child's runs, in order, and where it writes a marker as each stops.

    Attributes:
        runs: The runs, started in this order.
        markers: A folder for the markers (``0``, ``1``...: the run's index).
    """

    runs: tuple[StoppedRun, ...]
    markers: Path

    def to_json(self) -> str:
        """The plan as the child's one argument."""
        runs = [run.to_json() for run in self.runs]
        return json.dumps({"runs": runs, "markers": str(self.markers)})


def start_child(plan: KillPlan) -> subprocess.Popen[bytes]:
    """Start the child running ``plan``; :func:`kill_when_stopped` kills it.

    The caller may work meanwhile (the child is another process, so on another core).
    """
    plan.markers.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.kill_harness", plan.to_json()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_when_stopped(child: subprocess.Popen[bytes], plan: KillPlan) -> None:
    """Wait until every run of ``plan`` has stopped, then SIGKILL ``child``.

    Raises:
        AssertionError: If the child ends by itself, or does not reach every stop within
            :data:`TIMEOUT` seconds (with the end of its stderr).
    """
    stops = [plan.markers / str(i) for i in range(len(plan.runs))]
    try:
        deadline = time.monotonic() + TIMEOUT
        while not all(p.exists() for p in stops) and child.poll() is None:
            assert time.monotonic() < deadline, f"the child did not stop within {TIMEOUT} s"
            time.sleep(0.02)
        if child.poll() is not None:
            error = child.stderr.read().decode() if child.stderr else ""
            raise AssertionError(f"the child ended with {child.returncode}: {error[-3000:]}")
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stderr is not None:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def _stop_at(step: int, marker: Path) -> Callable[[StepEvent], None]:
    """An ``on_step`` that, once ``step`` steps are done, writes ``marker`` and waits to die."""

    def on_step(event: StepEvent) -> None:
        if event.step >= step:
            marker.write_text(str(event.step))
            time.sleep(3600)  # the parent kills the process meanwhile

    return on_step


def _start(run: dict[str, object], marker: Path) -> threading.Thread:
    """Start ``run`` in a daemon thread that stops at its step."""
    from segflow.config import PredictParams, TrainParams
    from segflow.predicting import predict
    from segflow.training import train

    on_step = _stop_at(int(str(run["step"])), marker)
    target: Callable[[], object]
    if run["kind"] == "train":
        params = TrainParams.model_validate(run["params"])
        target = lambda: train(params, on_step=on_step)  # noqa: E731
    else:
        predicting = PredictParams.model_validate(run["params"])
        target = lambda: predict(predicting, on_step=on_step)  # noqa: E731
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _child(argument: str) -> None:
    plan = json.loads(argument)
    markers = Path(plan["markers"])
    for i, run in enumerate(plan["runs"]):
        thread = _start(run, markers / str(i))
        while not (markers / str(i)).exists():
            if not thread.is_alive():
                raise SystemExit(f"run {i} ({run['kind']}) ended before its stop")
            time.sleep(0.01)
    time.sleep(3600)


if __name__ == "__main__":
    _child(sys.argv[1])
