"""The demo flow: the main job end to end on embedded defaults.

Synthesizes videos where memory across segments matters (the label of each frame is whether
an odd number of flashes has happened so far), ingests them, trains the stateful LSTM twice
(state carried across segments, and reset every segment as the baseline), predicts the
held-out videos, and reports: a metrics table (markdown artifact), a PNG plot (linked
artifact) and TensorBoard scalars.

Deploy or run by path: ``flows/demo.py:demo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

import flows  # noqa: F401  (flows are entry points: the package sets up the runtime)
from flows.ingest import ingest
from flows.predict import predict
from flows.train import train
from segflow.config import (
    CheckpointConfig,
    DemoParams,
    IngestParams,
    ModelConfig,
    PredictParams,
    SelectionConfig,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from tasks.demo import plot_task, publish_demo_report, score_task, synth_task


@flow(name="segflow-demo")
def demo(params: DemoParams = DemoParams()) -> dict[str, Any]:
    """Run synth → ingest → train (carried and reset) → predict → report."""
    root = Path(params.workdir).resolve()
    where = {
        "sources": str(root / "sources"),
        "store": str(root / "store"),
        "checkpoints": str(root / "checkpoints"),
        "tensorboard": str(root / "tensorboard"),
        "plot": str(root / "plot.png"),
    }
    paths = synth_task(where["sources"], params)
    store = StoreConfig(url=where["store"])
    ingest(IngestParams(sources=paths, store=store, write={"segment_length": params.segment_length}))
    ids = sorted(Path(p).stem for p in paths)
    held_out = max(1, len(ids) // 4)
    train_ids, val_ids = ids[:-held_out], ids[-held_out:]
    reports = {
        tag: train(_train_params(params, where, store, train_ids, val_ids, tag, reset))
        for tag, reset in (("demo-carried", False), ("demo-reset", True))
    }
    predict(
        PredictParams(
            store=store,
            selection=SelectionConfig(ids=val_ids),
            checkpoints=CheckpointConfig(url=where["checkpoints"]),
            model_tag="demo-carried",
            stream=StreamConfig(lanes=params.lanes, segment_length=params.segment_length),
        )
    )
    stored = score_task(where["store"], "demo-carried", val_ids)
    plot_task(where["store"], "demo-carried", val_ids[0], where["plot"], params.segment_length)
    metrics = _metrics(reports, stored)
    publish_demo_report(metrics, where)
    return {"metrics": metrics, "where": where}


def _train_params(
    params: DemoParams,
    where: dict[str, str],
    store: StoreConfig,
    train_ids: list[str],
    val_ids: list[str],
    tag: str,
    reset: bool,
) -> TrainParams:
    model = ModelConfig(
        frame_shape=(params.size, params.size, 3),
        input_dtype="uint8",
        encoder="avgpool",
        # Average pooling over the whole frame: brightness is what tells a flash, and a
        # global pool learns in a few epochs where a 4x4 grid of the moving scene does not.
        pool_size=params.size,
        lstm_units=[params.units],
        task="binary",
        outputs=1,
    )
    return TrainParams(
        store=store,
        selection=SelectionConfig(ids=train_ids),
        validation_ids=val_ids,
        model=model,
        stream=StreamConfig(lanes=params.lanes, segment_length=params.segment_length),
        checkpoints=CheckpointConfig(url=where["checkpoints"]),
        epochs=params.epochs,
        learning_rate=params.learning_rate,
        seed=params.seed,
        model_tag=tag,
        reset_every_segment=reset,
        tensorboard_dir=str(Path(where["tensorboard"]) / tag),
    )


def _metrics(reports: dict[str, dict[str, Any]], stored: dict[str, float]) -> dict[str, float]:
    carried = reports["demo-carried"]["history"][-1]
    reset = reports["demo-reset"]["history"][-1]
    return {
        "carried_val": carried["val_accuracy"],
        "reset_val": reset["val_accuracy"],
        "carried_pred": stored["accuracy"],
        "gap_points": 100 * (carried["val_accuracy"] - reset["val_accuracy"]),
    }
