"""Where a flow's tasks run: Prefect's thread runner in the flow's process, or Dask.

Every flow that does heavy work takes :class:`~segflow.config.DaskOptions` in its parameters
and runs its coarse tasks under :func:`task_runner`: a ``DaskTaskRunner`` joining the
scheduler at ``dask_address``, or starting a local cluster of ``dask_workers`` processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from segflow.config import DaskOptions

__all__ = ["cluster_workers", "placed_on", "task_runner"]


def task_runner(options: DaskOptions, *, threads: int = 2) -> Any:
    """The task runner for ``options``: Dask when asked for, else ``threads`` threads here.

    Local clusters are processes of one thread each: decoding, encoding and the engine's
    Python hold the GIL in places, and one model per process is what a worker keeps.

    >>> type(task_runner(DaskOptions())).__name__
    'ThreadPoolTaskRunner'
    >>> task_runner(DaskOptions(dask_workers=3)).cluster_kwargs
    {'n_workers': 3, 'threads_per_worker': 1}
    """
    if options.dask_address is not None:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=options.dask_address)
    if options.dask_workers is not None:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(
            cluster_kwargs={"n_workers": options.dask_workers, "threads_per_worker": 1}
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=threads)


def cluster_workers(runner: Any) -> list[str]:
    """The addresses of the Dask workers behind ``runner``, sorted; [] when not on Dask.

    ``runner`` is a started task runner (a flow's ``FlowRunContext.task_runner``).

    >>> cluster_workers(None)
    []
    """
    client = getattr(runner, "client", None)
    if client is None:
        return []
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


@contextmanager
def placed_on(worker: str | None) -> Iterator[None]:
    """Tasks submitted to Dask within the block go to ``worker`` while it lives.

    The restriction is loose (``allow_other_workers``): if ``worker`` dies, or is not in
    the cluster, the scheduler runs the task on another worker. Without it, Dask may put
    two coarse tasks on one worker while another is idle: it places a task by estimated
    occupancy, which is wrong for a worker still busy (another run's task) or slow to start.

    >>> with placed_on(None):
    ...     pass
    """
    if worker is None:
        yield
        return
    import dask

    with dask.annotate(workers=[worker], allow_other_workers=True):
        yield
