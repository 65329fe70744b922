"""``python -m benchmarks [NAME...]`` runs every benchmark (or the named ones), each alone.

Each runs in its own process; a benchmark fails when it misses a goal or crashes. A summary
line per benchmark closes the run, and the exit status is 1 when any failed.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import RESULTS_DIR


def names() -> list[str]:
    """Benchmark modules: every module in this package not starting with an underscore."""
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def summary(name: str, returncode: int, started: float) -> str:
    """One line: the benchmark, passed or failed, and why (goals missed, or a crash).

    Goals are read from the results JSON the run wrote (one older than ``started`` is
    another run's and ignored).

    >>> summary("nothing-here", 0, time.time())
    'nothing-here: passed'
    """
    goals = _goals_written(RESULTS_DIR / f"{name}.json", started)
    if goals is None:
        return f"{name}: passed" if returncode == 0 else f"{name}: FAILED (exit {returncode})"
    missed = [str(g["measure"]) for g in goals if not g["passed"]]
    verdict = "passed" if returncode == 0 else "FAILED"
    line = f"{name}: {verdict}, {len(goals) - len(missed)} of {len(goals)} goals met"
    return line + (f"; missed: {'; '.join(missed)}" if missed else "")


def _goals_written(path: Path, started: float) -> list[dict[str, object]] | None:
    if not path.exists() or path.stat().st_mtime < started:
        return None
    goals: list[dict[str, object]] = json.loads(path.read_text()).get("goals", [])
    return goals


def main() -> int:
    """Run the benchmarks named on the command line (default: all); 1 if any failed."""
    chosen = sys.argv[1:] or names()
    lines, failed = [], []
    for name in chosen:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        started = time.time()
        returncode = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"]).returncode
        lines.append(summary(name, returncode, started))
        if returncode != 0:
            failed.append(name)
    print("\n=== summary ===")
    print("\n".join(lines))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
