"""The benchmarks' goals: the pass/fail logic, the results JSON, and that each declares some.

Nothing here runs a benchmark; the modules are imported in one fresh interpreter, which also
shows that declaring goals costs no TensorFlow or Prefect import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import _common
from benchmarks.__main__ import names, summary
from benchmarks._common import Goal, Target, exit_status, finish, write_results
from segflow.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
NAN = float("nan")


@pytest.mark.parametrize(
    ("comparison", "threshold", "value", "passed"),
    [
        (">=", 0.8, 0.86, True),  # a ratio above its floor
        (">=", 0.8, 0.8, True),  # the bound itself meets an inclusive goal
        (">=", 0.8, 0.79, False),
        ("<=", 1.1, 1.0, True),  # peak RSS 4x / 1x
        ("<=", 1.1, 1.1000001, False),
        ("<", 1500, 1500, False),  # the bound itself misses a strict goal
        ("<", 1500, 951, True),
        (">", 2, 2.5, True),
        ("==", 1, 1, True),  # one flow run
        ("==", 1, 10_000, False),  # a flow run per partition
        (">=", 0.9, NAN, False),  # a figure that could not be computed never passes
        ("<=", 30, NAN, False),
    ],
)
def test_goal_passes_by_its_comparison(
    comparison: str, threshold: float, value: float, passed: bool
) -> None:
    goal = Target("measure", comparison, threshold).check(value)  # type: ignore[arg-type]
    assert goal.passed is passed


def test_an_unknown_comparison_is_refused() -> None:
    with pytest.raises(ConfigError, match="argument `comparison`"):
        Target("measure", "=>", 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="argument `comparison`"):
        Goal("measure", "!=", 1, 1)  # type: ignore[arg-type]


def test_goals_are_frozen() -> None:
    goal = Goal("ratio", ">=", 0.8, 0.86)
    with pytest.raises(AttributeError):
        goal.value = 0.1  # type: ignore[misc]


def test_check_names_the_goal_and_keeps_the_bound() -> None:
    target = Target("zarr / raw", ">=", 0.8)
    assert target.check(0.9, qualifier="400 MB") == Goal("zarr / raw, 400 MB", ">=", 0.8, 0.9)
    assert target.check(1).measure == "zarr / raw"
    assert str(target) == ">= 0.8"


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ([0.9, 0.95], 0),  # every goal met
        ([0.9, 0.5], 1),  # one missed fails the benchmark
        ([], 1),  # a benchmark that checked nothing proves nothing
    ],
)
def test_exit_status(values: list[float], status: int) -> None:
    target = Target("ratio", ">=", 0.9)
    assert exit_status([target.check(v) for v in values]) == status


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(_common, "RESULTS_DIR", tmp_path)
    return tmp_path


def test_results_json_records_goals_and_verdict(results_dir: Path) -> None:
    goals = [Goal("ratio", ">=", 0.8, 0.86), Goal("peak RSS MB", "<", 1500, 1600.0)]
    path = write_results("demo", {"figure": 1.5}, goals)
    document = json.loads(path.read_text())
    assert path == results_dir / "demo.json"
    assert document["benchmark"] == "demo" and document["figure"] == 1.5
    assert document["goals"] == [
        {"measure": "ratio", "comparison": ">=", "threshold": 0.8, "value": 0.86, "passed": True},
        {
            "measure": "peak RSS MB",
            "comparison": "<",
            "threshold": 1500,
            "value": 1600.0,
            "passed": False,
        },
    ]
    assert document["passed"] is False


def test_finish_writes_prints_then_fails_on_a_missed_goal(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    goals = [Goal("ratio", ">=", 0.9, 0.5)]
    status = finish("demo", {}, goals, (["measure", "value"], [["ratio", 0.5]]), notes=["note"])
    out = capsys.readouterr().out
    assert status == 1
    assert json.loads((results_dir / "demo.json").read_text())["passed"] is False
    assert out.index("note") < out.index("measure") < out.index("MISSED")
    assert out.rstrip().endswith("0 of 1 goals met; 1 MISSED")


def test_finish_passes_when_every_goal_is_met(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = finish("demo", {}, [Goal("ratio", ">=", 0.9, 0.95)], (["m"], [["x"]]))
    assert status == 0
    assert json.loads((results_dir / "demo.json").read_text())["passed"] is True
    assert "1 of 1 goals met" in capsys.readouterr().out


def test_summary_names_the_missed_goals(results_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.__main__ as runner

    monkeypatch.setattr(runner, "RESULTS_DIR", results_dir)
    write_results("demo", {}, [Goal("ratio", ">=", 0.9, 0.5), Goal("runs", "==", 1, 1)])
    assert summary("demo", 1, started=0.0) == "demo: FAILED, 1 of 2 goals met; missed: ratio"
    # a results file from before this run is not this run's: a crash reads as a crash
    assert summary("demo", 1, started=2e9) == "demo: FAILED (exit 1)"


#: Every benchmark module, imported in a fresh interpreter: its declared goals, and whether
#: declaring them loaded a heavy framework.
_DECLARED = """
import importlib, json, sys
from benchmarks._common import Target
declared = {}
for name in sys.argv[1:]:
    goals = getattr(importlib.import_module(f"benchmarks.{name}"), "GOALS", None)
    ok = isinstance(goals, tuple) and all(isinstance(g, Target) for g in goals)
    declared[name] = [[g.measure, str(g)] for g in goals] if ok else repr(goals)
heavy = sorted({"tensorflow", "keras", "prefect"} & {m.split(".")[0] for m in sys.modules})
print(json.dumps({"declared": declared, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def declared() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _DECLARED, *names()],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_runner_finds_every_benchmark() -> None:
    assert names() == [
        "backfill",
        "cli",
        "ingest",
        "manytoone",
        "orchestration",
        "pipeline",
        "s3_throughput",
        "sharded",
        "small_ingest",
        "stream_memory",
        "streaming",
        "video_ingest",
        "windowed",
    ]


@pytest.mark.parametrize("name", names())
def test_every_benchmark_declares_goals(name: str, declared: dict[str, dict[str, object]]) -> None:
    goals = declared["declared"][name]
    assert isinstance(goals, list) and goals, f"benchmarks.{name} declares no GOALS: {goals}"
    measures = [measure for measure, _ in goals]
    assert len(set(measures)) == len(measures), f"benchmarks.{name} repeats a goal: {measures}"


def test_declaring_goals_imports_no_framework(declared: dict[str, object]) -> None:
    assert declared["heavy"] == []
