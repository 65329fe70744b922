"""A shard's task retried by Prefect after a failure says why in the run's report.

The shard runs as the ``predict-shard`` task in a flow on Prefect's default runner (the
cluster's own tests, with a worker killed, are in ``tests/dask/test_sharded_predict.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect import flow

import tasks.predict
from segflow.predicting import PredictReport, hold_tag, plan_prediction_shards
from segflow.predicting import predict as predict_core
from tests.durable.test_predicting import world_of
from tests.durable.test_shards import LENGTHS

pytestmark = pytest.mark.usefixtures("prefect_server")


def run_shard(params: Any, shard: Any) -> PredictReport:
    """The shard's task, retried at once, in a flow of its own."""
    retried_fast = tasks.predict.predict_shard_task.with_options(retry_delay_seconds=0)

    @flow(name="test-shard-retries")
    def one_shard() -> PredictReport:
        with hold_tag(params, "flow-9"):
            return retried_fast(params, shard, "flow-9")

    return one_shard()


def test_a_failed_attempt_is_retried_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = world_of(tmp_path, LENGTHS)
    params = world.params()
    (shard,) = plan_prediction_shards(params, 1)
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> PredictReport:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError("the store hung up")
        return predict_core(*args, **kwargs)

    monkeypatch.setattr(tasks.predict, "predict", flaky)
    report = run_shard(params, shard)
    assert len(calls) == 2 and report.retried_shards == (0,)
    assert report.retries == (
        "shard-0-of-1 (attempt 1 failed: ConnectionResetError: the store hung up)"
    )
    assert tasks.predict.shard_failures() == {}  # forgotten once the shard succeeded


def test_a_first_attempt_that_succeeds_is_not_retried(tmp_path: Path) -> None:
    world = world_of(tmp_path, LENGTHS)
    params = world.params()
    (shard,) = plan_prediction_shards(params, 1)
    report = run_shard(params, shard)
    assert report.retried_shards == () and report.retries == ""
    assert report.predicted == len(LENGTHS)  # the empty sequence too
