"""The cluster fixture itself: separate processes that see the project and the test's services."""

from __future__ import annotations

import os

from tests.dask.conftest import DaskCluster


def test_workers_are_separate_processes_with_the_test_environment(
    dask_cluster: DaskCluster,
) -> None:
    with dask_cluster.client() as client:
        seen = client.run(lambda: (os.getpid(), os.environ.get("PREFECT_API_URL")))
        imported = client.run(lambda: __import__("segflow.predicting").__name__)
    pids = {pid for pid, _ in seen.values()}
    assert pids == set(dask_cluster.workers) and os.getpid() not in pids
    assert {url for _, url in seen.values()} == {dask_cluster.env["PREFECT_API_URL"]}
    assert set(imported.values()) == {"segflow"}


def test_a_killed_worker_is_gone_and_replaced_for_the_next_test(dask_cluster: DaskCluster) -> None:
    pid = dask_cluster.kill_worker(0)
    dask_cluster.wait_for_workers(1)
    dask_cluster.revive()
    assert pid not in dask_cluster.workers and len(dask_cluster.alive()) == 2
