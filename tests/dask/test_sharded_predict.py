"""Sharded prediction on a real cluster (``dask scheduler`` and two ``dask worker`` processes),
with the data and the checkpoints on the local S3 server.

Checked: two workers give the predictions of a run in one process (within 1e-6); a worker
SIGKILLed mid-shard is survived (the shard runs again on the other worker and resumes from
its checkpoint; every sequence complete, nothing missing, duplicated or half-written); the
run's report names the retried shard; the evaluate flow given the cluster scores there.
The shard plan's own tests (Hypothesis against a brute-force oracle) are in
``tests/durable/test_shards.py``, with the shard runs in one process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from segflow.config import CheckpointConfig, ModelConfig, PredictParams, StoreConfig, StreamConfig
from segflow.engine.engine import StreamingEngine
from segflow.predicting import PredictReport, predict
from segflow.predicting.shards import Shard, shard_lock_name
from segflow.registry import export_model, shard_run_key
from storage import open_store
from storage.base import Store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.dask.conftest import DaskCluster
from tests.engine.store_helpers import write_sequence

TAG = "tiny"
FEATURES = 3
CONFIG = ModelConfig(frame_shape=(FEATURES,), lstm_units=[6], task="binary")
#: Noisy sequences of uneven lengths (one not a multiple of anything, one tiny).
LENGTHS = (173, 61, 140, 97, 5)
IDS = [f"rec-{i:02d}" for i in range(len(LENGTHS))]
STREAM = StreamConfig(lanes=2, segment_length=8)


def fill(store: Store) -> None:
    """The test's sequences (seeded noise with a drift) into ``store``."""
    repo = SequenceRepository(store)
    rng = np.random.default_rng(14)
    for sequence_id, length in zip(IDS, LENGTHS, strict=True):
        drift = np.cumsum(rng.normal(0, 0.1, (length, FEATURES)), axis=0)
        frames = (rng.normal(size=(length, FEATURES)) + drift).astype(np.float32)
        labels = (frames[:, 0] > drift[:, 0]).astype(np.int8)
        write_sequence(repo, sequence_id, frames, chunk_length=8, labels=labels)


def export_tiny(store: Store) -> None:
    """A tiny model with seeded random weights, exported under :data:`TAG`."""
    engine = StreamingEngine(CONFIG, lanes=1, segment_length=1, seed=0)
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in engine.model.get_weights()]
    engine.model.set_weights(weights)
    export_model(store, TAG, engine, CONFIG, meta={"checkpoint": "seeded"})


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Predictions of a run in this process (no Dask) over a local copy of the data."""
    root = tmp_path_factory.mktemp("reference")
    data, ckpt = open_store(root / "data"), open_store(root / "ckpt")
    fill(data)
    export_tiny(ckpt)
    params = PredictParams(
        store=StoreConfig(url=str(root / "data")),
        checkpoints=CheckpointConfig(url=str(root / "ckpt")),
        model_tag=TAG,
        stream=STREAM,
    )
    predict(params)
    preds = PredictionRepository(data)
    return {sid: preds.read(TAG, sid) for sid in IDS}


@pytest.fixture
def s3_params(s3_bucket: str, s3_server: str) -> Callable[..., PredictParams]:
    """Parameters of a run on S3 (fresh data and checkpoints), joining a given cluster.

    Only the endpoint travels in the options: the credentials come from the AWS_* variables
    the workers were started with, as configs refuse secrets.
    """
    root = f"s3://{s3_bucket}/sharded-{uuid.uuid4().hex[:10]}"
    options = {"endpoint_url": s3_server}
    fill(open_store(f"{root}/data", options))
    export_tiny(open_store(f"{root}/ckpt", options))

    def make(address: str, every_steps: int = 1000) -> PredictParams:
        return PredictParams(
            store=StoreConfig(url=f"{root}/data", storage_options=options),
            checkpoints=CheckpointConfig(
                url=f"{root}/ckpt", storage_options=options, every_steps=every_steps
            ),
            model_tag=TAG,
            stream=STREAM,
            dask_address=address,
        )

    return make


def check_predictions(params: PredictParams, reference: dict[str, np.ndarray]) -> None:
    """Every sequence complete, of its full length, equal to the one-process run."""
    preds = PredictionRepository(params.store.open())
    assert preds.ids(TAG) == sorted(IDS)
    for sequence_id, length in zip(IDS, LENGTHS, strict=True):
        meta = preds.meta(TAG, sequence_id)
        assert meta.complete and meta.length == length, sequence_id
        got = preds.read(TAG, sequence_id)
        assert got.shape == reference[sequence_id].shape, sequence_id
        np.testing.assert_allclose(got, reference[sequence_id], atol=1e-6, err_msg=sequence_id)
    store = params.store.open()
    assert not [k for k in store.list("predictions") if k.endswith(".lock")]
    assert params.checkpoints.open().list("runs") == []


def run_flow(params: PredictParams) -> PredictReport:
    from flows.predict import predict as predict_flow

    report = predict_flow(params)
    assert isinstance(report, PredictReport)
    return report


def test_two_workers_equal_one_process(
    dask_cluster: DaskCluster,
    s3_params: Callable[..., PredictParams],
    reference: dict[str, np.ndarray],
) -> None:
    params = s3_params(dask_cluster.address)
    report = run_flow(params)
    assert [(s.index, s.count) for s in report.shards] == [(0, 2), (1, 2)]
    assert report.retried_shards == (), f"{report.retries}\n{dask_cluster.log_tail()}"
    assert report.predicted == len(IDS) and report.frames == sum(LENGTHS)
    assert sorted(r.id for r in report.sequences) == sorted(IDS)
    # One shard per worker: each placed on a worker of its own.
    pids = [int(s.worker.rsplit(":", 1)[1]) for s in report.shards]
    assert sorted(pids) == sorted(dask_cluster.workers), dask_cluster.log_tail()
    check_predictions(params, reference)
    # Each worker predicted a shard; the flow's own process predicted nothing.
    writers = {PredictionRepository(params.store.open()).meta(TAG, i).flow_run_id for i in IDS}
    assert len(writers) == 1

    # Scoring honours the cluster too: one task on it.
    from flows.evaluate import evaluate
    from segflow.config import EvaluateParams
    from segflow.evaluation import EvaluationReport

    scored = evaluate(
        EvaluateParams(store=params.store, model_tag=TAG, dask_address=dask_cluster.address)
    )
    assert isinstance(scored, EvaluationReport) and scored.counts.scored > 0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_shard_is_survived(
    dask_cluster: DaskCluster,
    s3_params: Callable[..., PredictParams],
    reference: dict[str, np.ndarray],
) -> None:
    params = s3_params(dask_cluster.address, every_steps=3)
    data, ckpt = params.store.open(), params.checkpoints.open()
    preds = PredictionRepository(data)
    # The plan is deterministic: the first shard holds the longest sequence.
    victim = Shard(0, 2, (), 1)
    lock = shard_lock_name(TAG, victim)
    saved = f"runs/{shard_run_key(TAG, 0, 2)}"

    with ThreadPoolExecutor(1) as pool:
        running: Future[PredictReport] = pool.submit(run_flow, params)
        holder = wait_for(lambda: preds.read_lock(lock), "the shard to start")
        wait_for(
            lambda: [k for k in ckpt.list(saved) if k.endswith("manifest.json")],
            "the shard's first checkpoint",
        )
        assert holder["pid"] in dask_cluster.workers
        dask_cluster.kill_worker(dask_cluster.workers.index(holder["pid"]))
        killed_mid_shard = not all(
            (m := preds.find_meta(TAG, i)) is not None and m.complete for i in IDS
        )
        report = running.result(timeout=300)

    assert killed_mid_shard, "the kill must land while the shard still had work"
    # Dask also reruns a shard whose finished result lived on the dead worker; the report
    # names every shard that ran again, and the killed one among them.
    assert 0 in report.retried_shards
    (outcome,) = [s for s in report.shards if s.index == 0]
    assert outcome.resumed_from is not None and outcome.resumed_from > 0
    assert outcome.retry_reason.startswith("resumed its checkpoint at step"), report.retries
    check_predictions(params, reference)
