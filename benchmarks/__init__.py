"""segflow benchmarks: each runs alone with ``python -m benchmarks.NAME``; ``make bench`` runs all.

Every benchmark measures ratios against a baseline run in the same process or script, prints a
short table last, and writes its figures as JSON to ``benchmarks/results/NAME.json``.

Benchmarks are entry points: the package sets up the runtime before any of them imports
TensorFlow.
"""

from segflow.runtime import configure_runtime

configure_runtime()
