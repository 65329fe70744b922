"""Running a flow in this process and turning its outcome into a report or an exit."""

from __future__ import annotations

from typing import Any

from segflow_cli.common import console, fail
from segflow_cli.progress import FrameProgress

__all__ = ["flow_report", "run_flow"]


def flow_report(
    flow_fn: Any, params: Any, name: str, progress: Any
) -> tuple[dict[str, Any], bool]:
    """Run a flow in this process; return its report and whether the run failed.

    A flow that fails with a report (some sources or partitions failed) still returns it, so
    the caller can print it before exiting non-zero; one that fails without a report exits
    here with its error.
    """
    with progress:
        state = flow_fn(params, return_state=True)
    report = state.result(raise_on_failure=False)
    if not isinstance(report, dict):
        raise fail(report if isinstance(report, Exception) else RuntimeError(f"{name} failed: {state.message}"))
    return report, state.is_failed()


def run_flow(flow_fn: Any, params: Any, name: str) -> dict[str, Any]:
    """Run a flow that reports only on success; exit with its error otherwise."""
    report, failed = flow_report(flow_fn, params, name, FrameProgress(console))
    if failed:
        raise fail(f"{name} failed.")
    return report

