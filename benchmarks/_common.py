"""Helpers shared by the benchmarks: goals, results JSON, the closing tables.

A benchmark declares what it must achieve as a module-level ``GOALS`` tuple of
:class:`Target` (readable without running anything), checks each target against what it
measured (:meth:`Target.check` gives a :class:`Goal`), and ends with :func:`finish`, which
writes the JSON, prints the benchmark's table and then the goals, and returns the exit status
(1 when any goal is missed).

>>> target = Target("peak RSS MB", "<", 1500)
>>> goal = target.check(951.0)
>>> goal.passed, str(target)
(True, '< 1500')
>>> exit_status([goal, target.check(1600.0)])
1
"""

from __future__ import annotations

import json
import math
import operator
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from storage.validation import invalid_argument

RESULTS_DIR = Path(__file__).resolve().parent / "results"

Comparison = Literal[">=", "<=", ">", "<", "=="]
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Goal:
    """One goal checked against one measurement.

    Args:
        measure: What was measured, as the closing table names it.
        comparison: How ``value`` must compare with ``threshold``.
        threshold: The goal's bound.
        value: The measured figure (NaN, e.g. from a failed division, misses every goal).

    >>> Goal("flow runs", "==", 1, 1).passed
    True
    >>> Goal("ratio", ">=", 0.9, float("nan")).passed
    False
    """

    measure: str
    comparison: Comparison
    threshold: float
    value: float

    def __post_init__(self) -> None:
        _require_comparison(self.comparison)

    @property
    def passed(self) -> bool:
        """Whether ``value`` meets the goal."""
        return not math.isnan(self.value) and _COMPARE[self.comparison](self.value, self.threshold)

    def to_json(self) -> dict[str, Any]:
        """The goal as the results JSON records it (``passed`` included).

        >>> Goal("ratio", ">=", 0.8, 0.86).to_json()
        {'measure': 'ratio', 'comparison': '>=', 'threshold': 0.8, 'value': 0.86, 'passed': True}
        """
        return {
            "measure": self.measure,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "value": self.value,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class Target:
    """A goal as a benchmark declares it, before anything is measured.

    Args:
        measure: What is measured (the checked :class:`Goal` may add a qualifier, such as
            the data size).
        comparison: How the measured value must compare with ``threshold``.
        threshold: The goal's bound.

    >>> Target("zarr / raw", ">=", 0.8).check(0.86, qualifier="400 MB").measure
    'zarr / raw, 400 MB'
    """

    measure: str
    comparison: Comparison
    threshold: float

    def __post_init__(self) -> None:
        _require_comparison(self.comparison)

    def __str__(self) -> str:
        return f"{self.comparison} {self.threshold:g}"

    def check(self, value: float, *, qualifier: str = "") -> Goal:
        """The goal checked against ``value``, named ``measure`` (plus ``, qualifier``)."""
        measure = f"{self.measure}, {qualifier}" if qualifier else self.measure
        return Goal(measure, self.comparison, self.threshold, float(value))


def _require_comparison(comparison: str) -> None:
    if comparison not in _COMPARE:
        raise invalid_argument("comparison", f"one of {', '.join(_COMPARE)}", comparison)


def exit_status(goals: Sequence[Goal]) -> int:
    """0 when every goal passed, else 1 (a benchmark with no goals checked fails too).

    >>> exit_status([])
    1
    """
    return 0 if goals and all(goal.passed for goal in goals) else 1


def write_results(name: str, data: dict[str, Any], goals: Sequence[Goal] = ()) -> Path:
    """Write ``data``, machine facts and ``goals`` to ``benchmarks/results/<name>.json``.

    The document carries ``"goals"`` (each :meth:`Goal.to_json`) and ``"passed"`` (whether
    :func:`exit_status` is 0). Returns the path written.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **data,
        "goals": [goal.to_json() for goal in goals],
        "passed": exit_status(goals) == 0,
    }
    path.write_text(json.dumps(document, indent=2, default=float))
    return path


def finish(
    name: str,
    data: dict[str, Any],
    goals: Sequence[Goal],
    table: tuple[Sequence[str], Sequence[Sequence[Any]]],
    *,
    notes: Sequence[str] = (),
) -> int:
    """Write the results, print ``notes``, ``table`` and the goals; return the exit status.

    Args:
        name: The benchmark's name (its results file is ``<name>.json``).
        data: The figures measured.
        goals: Every goal, checked.
        table: Headers and rows of the benchmark's own table.
        notes: Lines printed before the table.

    Returns:
        0 when every goal passed, else 1: the benchmark's process exits with it, after the
        JSON is written and the tables printed.
    """
    path = write_results(name, data, goals)
    print(f"results: {path}")
    for note in notes:
        print(note)
    print_table(*table)
    print()
    print_goals(goals)
    return exit_status(goals)


def print_goals(goals: Sequence[Goal]) -> None:
    """Print the closing table: one row per goal, its figure, its bound and the verdict."""
    print_table(
        ["goal", "measured", "target", "result"],
        [[g.measure, g.value, f"{g.comparison} {g.threshold:g}", _verdict(g)] for g in goals],
    )
    missed = sum(not goal.passed for goal in goals)
    tally = f"{len(goals) - missed} of {len(goals)} goals met"
    print(tally + (f"; {missed} MISSED" if missed else ""))


def _verdict(goal: Goal) -> str:
    return "passed" if goal.passed else "MISSED"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain fixed-width table."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process image, in bytes (``VmHWM``).

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that across ``exec``, so a child started
    by a large parent would report the parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")
