"""segflow benchmarks: each runs alone with ``python -m benchmarks.NAME``; ``make bench`` runs all.

Every benchmark measures ratios against a baseline run in the same process or script, declares
its goals as a module-level ``GOALS`` (see ``benchmarks._common.Target``), writes its figures
and the checked goals as JSON to ``benchmarks/results/NAME.json`` (``"goals"``, ``"passed"``),
prints its table and then the goals, and exits 1 when it missed any.

Benchmarks are entry points: the package sets up the runtime before any of them imports
TensorFlow.
"""

from segflow.runtime import configure_runtime

configure_runtime()
