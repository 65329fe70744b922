"""The whole path on S3: sources listed under a prefix, ingested, trained on, predicted, resumed."""

from __future__ import annotations

from typing import Any

import numpy as np
import s3fs

from segflow.config import (
    CheckpointConfig,
    IngestParams,
    ModelConfig,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.ingest.batch import ingest_one, plan_sources
from segflow.predicting import predict
from segflow.training import train
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository


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


def test_ingest_train_predict_on_s3(s3_store_url: str, s3_storage_options: dict[str, Any]) -> None:
    fs = s3fs.S3FileSystem(**s3_storage_options, skip_instance_cache=True)
    arrays = _upload_series(fs, s3_store_url, 3)
    store = StoreConfig(url=s3_store_url, storage_options=s3_storage_options)
    params = IngestParams(
        sources=[f"{s3_store_url}/landing/"], store=store, write={"segment_length": 8}
    )
    pairs = plan_sources(params)
    assert [sid for _, sid in pairs] == ["cam0", "cam1", "cam2"]
    results = [ingest_one(uri, sid, params) for uri, sid in pairs]
    assert [r.status for r in results] == ["written"] * 3, [r.message for r in results]
    repo = SequenceRepository(open_store(s3_store_url, s3_storage_options))
    np.testing.assert_array_equal(repo.frames("cam2")[:], arrays[2])
    assert repo.info("cam1").meta.label_kind == "per_frame"
    assert all(ingest_one(u, s, params).status == "skipped" for u, s in pairs)

    checkpoints = CheckpointConfig(
        url=f"{s3_store_url}-ckpt", storage_options=s3_storage_options, every_steps=2
    )
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
    outputs = PredictionRepository(open_store(s3_store_url, s3_storage_options)).read("s3m", "cam1")
    assert outputs.shape == (27, 1) and np.isfinite(outputs).all()
