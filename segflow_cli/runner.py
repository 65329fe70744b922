"""Running a flow in this process and turning its outcome into a typed report or an exit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from segflow.errors import SegflowError
from segflow_cli.common import console, debug_enabled, fail
from segflow_cli.progress import FrameProgress
from segflow_cli.server import note_temporary_server
from segflow_cli.tempserver import wait_until_ready

__all__ = ["RunLogFilter", "flow_report", "quiet_run_logs", "run_flow"]

ReportT = TypeVar("ReportT")

#: The loggers of Prefect's flow and task runs; they propagate to the root's console handler.
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class RunLogFilter(logging.Filter):
    """Keeps run records the command reports itself off the terminal.

    Drops a flow or task run's record that carries a :class:`~segflow.errors.SegflowError`
    (a user error: the command prints it on one line) and its "Finished in state ..." line
    (the command prints the outcome). Installed on the console handlers only, so the records
    still reach Prefect's API handler: the run's logs in the UI keep the traceback, and the
    run is marked Failed with the message. A bug's traceback still prints.

    >>> record = logging.LogRecord("prefect.flow_runs", 40, "", 0, "Finished in state %s",
    ...                            ("Failed()",), None)
    >>> RunLogFilter().filter(record)
    False
    >>> record.name = "prefect.flow_runs.x"; record.msg = "Encountered exception"
    >>> record.exc_info = (ValueError, ValueError("bug"), None)
    >>> RunLogFilter().filter(record)
    True
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(RUN_LOGGERS):
            return True
        if record.exc_info and isinstance(record.exc_info[1], SegflowError):
            return False
        return not str(record.msg).startswith("Finished in state")


#: Prefect's background services that drain their queues when the process exits.
EXIT_DRAINING_LOGGERS = ("EventsWorker", "APILogWorker")


def _not_draining_notice(record: logging.LogRecord) -> bool:
    """False for "Still processing items: N items remaining..." (Prefect, at exit).

    On a busy machine the events of the last task runs are still queued when the command
    ends; Prefect sends them before the process exits and says so at WARNING, after the
    command's own last line.
    """
    return not str(record.msg).startswith("Still processing items")


@contextmanager
def quiet_run_logs() -> Iterator[None]:
    """Install :class:`RunLogFilter` on the root logger's handlers (not with ``--debug``).

    Also drops, from then on, Prefect's notice that it is still sending events at exit.
    """
    if not debug_enabled():  # for good: the notice comes at exit, after this block
        for name in EXIT_DRAINING_LOGGERS:
            logging.getLogger(name).addFilter(_not_draining_notice)
    handlers = [] if debug_enabled() else list(logging.getLogger().handlers)
    run_filter = RunLogFilter()
    for handler in handlers:
        handler.addFilter(run_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(run_filter)


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
    here with its error on one line (a bug's traceback was logged by Prefect). The run is an
    in-process one (:func:`flows.settings.in_process_runs`: no heartbeats).

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
    from flows.settings import in_process_runs

    note_temporary_server()
    try:
        wait_until_ready()
    except RuntimeError as error:
        raise fail(error) from None
    with in_process_runs(), quiet_run_logs(), progress:
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
