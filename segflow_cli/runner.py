"""Running a flow in this process and turning its outcome into a typed report or an exit."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, TypeVar

from segflow_cli.common import console, fail
from segflow_cli.progress import FrameProgress

__all__ = ["flow_report", "run_flow"]

ReportT = TypeVar("ReportT")


def flow_report(
    flow_fn: Any,
    params: Any,
    name: str,
    progress: AbstractContextManager[Any],
    *,
    expected: type[ReportT],
) -> tuple[ReportT, bool]:
    """Run a flow in this process; return its report and whether the run failed.

    A flow that fails with a report (some sources or partitions failed) still returns it, so
    the caller can print it before exiting non-zero; one that fails without a report exits
    here with its error.

    Args:
        flow_fn: The flow.
        params: Its parameters.
        name: What the command is called, for the error message.
        progress: The display installed while the flow runs.
        expected: The type of the flow's report (its final state's data).

    Returns:
        The report, and True if the run failed.

    Raises:
        typer.Exit: If the flow ended without a report of the ``expected`` type.
    """
    with progress:
        state = flow_fn(params, return_state=True)
    report = state.result(raise_on_failure=False)
    if not isinstance(report, expected):
        if isinstance(report, Exception):
            raise fail(report)
        raise fail(RuntimeError(f"{name} failed: {state.message}"))
    return report, state.is_failed()


def run_flow(flow_fn: Any, params: Any, name: str, *, expected: type[ReportT]) -> ReportT:
    """Run a flow that reports only on success; exit with its error otherwise."""
    report, failed = flow_report(flow_fn, params, name, FrameProgress(console), expected=expected)
    if failed:
        raise fail(f"{name} failed.")
    return report
