"""The whole path on S3: sources listed under a prefix, ingested, trained on, predicted, resumed;
an archive backfilled and a landing folder landed.

Credentials come from the AWS environment, or from a credentials block while the environment
holds none (so nothing can fall back to it: the store, checkpoints, archive and landing all use
the block's). Ingest, train and predict with a block run through the flows and Prefect's
blocks in ``test_no_credential_leaks.py``; here they use the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import s3fs

import storage.credentials
from segflow.backfill import make_plan, run_plan, thread_submitter
from segflow.config import (
    BackfillParams,
    CheckpointConfig,
    IngestParams,
    ModelConfig,
    NightlyParams,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.ingest.batch import ingest_one, plan_sources
from segflow.landing import (
    ingest_then_predict,
    nightly_ingest_params,
    nightly_pairs,
    nightly_predict_params,
)
from segflow.predicting import predict
from segflow.training import train
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.s3server import S3Server

BLOCK = "e2e-s3"
BLOCK_KEY = "AKIASEGFLOWE2EBLOCK1"


@dataclass(frozen=True)
class Credentials:
    """How a test's run reaches S3: ``block`` for configs, ``options`` to look at the bucket."""

    block: str | None
    options: dict[str, Any]


@pytest.fixture(params=["environment", "block"])
def credentials(
    request: pytest.FixtureRequest,
    s3_moto_server: S3Server,
    s3_storage_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Credentials]:
    """The AWS environment's credentials, or a block's with none in the environment."""
    if request.param == "environment":
        yield Credentials(None, dict(s3_storage_options))
        return
    secrets = {"key": BLOCK_KEY, "secret": "e2e-block-secret"}

    def resolver(name: str) -> dict[str, Any]:
        assert name == BLOCK, name
        return dict(secrets)

    # The resolver Prefect's blocks get in `tasks` (tested in test_no_credential_leaks.py).
    monkeypatch.setattr(storage.credentials, "_resolvers", [resolver])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, "/nonexistent/segflow-test")
    s3_moto_server.forget_access_keys()
    yield Credentials(BLOCK, {**s3_storage_options, **secrets})
    assert s3_moto_server.access_keys == {BLOCK_KEY}  # nothing fell back to other credentials


def _store(url: str, credentials: Credentials) -> StoreConfig:
    options = {k: v for k, v in credentials.options.items() if k not in ("key", "secret")}
    return StoreConfig(url=url, storage_options=options, credentials_block=credentials.block)


def _checkpoints(url: str, credentials: Credentials) -> CheckpointConfig:
    store = _store(url, credentials)
    return CheckpointConfig(
        url=url,
        storage_options=store.storage_options,
        credentials_block=store.credentials_block,
        every_steps=2,
    )


def _upload_series(fs: s3fs.S3FileSystem, prefix: str, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = []
    for i in range(count):
        frames = rng.normal(size=(20 + 7 * i, 3)).astype("float32")
        labels = (frames[:, 0] > 0).astype("int8")
        with fs.open(f"{prefix}/landing/cam{i}.npy", "wb") as f:
            np.save(f, frames)
        with fs.open(f"{prefix}/landing/cam{i}.labels.npy", "wb") as f:
            np.save(f, labels)
        arrays.append(frames)
    return arrays


@pytest.mark.parametrize("credentials", ["environment"], indirect=True)
def test_ingest_train_predict_on_s3(s3_store_url: str, credentials: Credentials) -> None:
    fs = s3fs.S3FileSystem(**credentials.options, skip_instance_cache=True)
    arrays = _upload_series(fs, s3_store_url, 3)
    store = _store(s3_store_url, credentials)
    params = IngestParams(
        sources=[f"{s3_store_url}/landing/"], store=store, write={"segment_length": 8}
    )
    pairs = plan_sources(params)
    assert [sid for _, sid in pairs] == ["cam0", "cam1", "cam2"]
    results = [ingest_one(uri, sid, params) for uri, sid in pairs]
    assert [r.status for r in results] == ["written"] * 3, [r.message for r in results]
    repo = SequenceRepository(open_store(s3_store_url, credentials.options))
    np.testing.assert_array_equal(repo.frames("cam2")[:], arrays[2])
    assert repo.info("cam1").meta.label_kind == "per_frame"
    assert all(ingest_one(u, s, params).status == "skipped" for u, s in pairs)

    checkpoints = _checkpoints(f"{s3_store_url}-ckpt", credentials)
    stream = StreamConfig(lanes=2, segment_length=8)
    model = ModelConfig(frame_shape=(3,), lstm_units=[4], task="binary")
    report = train(
        TrainParams(
            store=store,
            checkpoints=checkpoints,
            model=model,
            stream=stream,
            epochs=1,
            model_tag="s3m",
        )
    )
    assert report.epochs == 1 and report.checkpoint
    predicted = predict(
        PredictParams(store=store, checkpoints=checkpoints, model_tag="s3m", stream=stream)
    )
    assert predicted.predicted == 3
    outputs = PredictionRepository(open_store(s3_store_url, credentials.options)).read(
        "s3m", "cam1"
    )
    assert outputs.shape == (27, 1) and np.isfinite(outputs).all()


def _export_tiny_model(checkpoints: str, options: dict[str, Any]) -> None:
    from segflow.checkpoint import export_model
    from segflow.engine.engine import StreamingEngine

    config = ModelConfig(frame_shape=(3,), lstm_units=[4], task="binary")
    engine = StreamingEngine(config, lanes=2, segment_length=4)
    export_model(open_store(checkpoints, options), "m", engine, config, meta={"checkpoint": "t"})


def test_backfill_and_nightly_on_s3(s3_store_url: str, credentials: Credentials) -> None:
    fs = s3fs.S3FileSystem(**credentials.options, skip_instance_cache=True)
    rng = np.random.default_rng(1)
    for day in ("2026-01-01", "2026-01-02"):
        for camera in ("cam1", "cam2"):
            with fs.open(f"{s3_store_url}/archive/{day}/{camera}.npy", "wb") as f:
                np.save(f, rng.normal(size=(int(rng.integers(5, 9)), 3)).astype("float32"))
    with fs.open(f"{s3_store_url}/landing/cam3.npy", "wb") as f:
        np.save(f, rng.normal(size=(11, 3)).astype("float32"))
    _export_tiny_model(f"{s3_store_url}/ckpt", credentials.options)
    common: dict[str, Any] = {
        "store": _store(f"{s3_store_url}/store", credentials),
        "checkpoints": _checkpoints(f"{s3_store_url}/ckpt", credentials),
        "model_tag": "m",
        "stream": StreamConfig(lanes=2, segment_length=4),
        "write": {"segment_length": 4},
    }

    backfill = BackfillParams(archive=f"{s3_store_url}/archive", ordered=True, **common)
    with ThreadPoolExecutor(max_workers=2) as pool:
        report = run_plan(make_plan(backfill), backfill, thread_submitter(pool, backfill))
    assert report.counts["done"] == 2, report.rows

    nightly = NightlyParams(landing=f"{s3_store_url}/landing", **common)
    pairs = nightly_pairs(nightly)
    assert [sid for _, sid in pairs] == ["cam3"]
    landed = ingest_then_predict(
        pairs, nightly_ingest_params(nightly), nightly_predict_params(nightly)
    )
    assert landed.landed == ("cam3",) and not landed.predict_error, landed.predict_error

    predictions = PredictionRepository(open_store(f"{s3_store_url}/store", credentials.options))
    assert predictions.read("m", "cam3").shape == (11, 1)
    repo = SequenceRepository(open_store(f"{s3_store_url}/store", credentials.options))
    assert sorted(repo.ids()) == ["cam1", "cam2", "cam3"]
