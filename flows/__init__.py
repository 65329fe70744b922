"""Prefect flows, addressed by path (``flows/ingest.py:ingest``): segflow's entry points.

A flow is where a process starts, so this package calls the runtime set-up before any flow
module imports TensorFlow (through tasks and the core); each flow module imports ``flows``
first for the case where Prefect loads it by file path.
"""

from segflow.runtime import configure_runtime

configure_runtime()
