"""The demo flow: the main job end to end on embedded defaults.

Synthesizes videos where memory across segments matters (the label of each frame is whether
an odd number of flashes has happened so far), ingests them, trains three models (the
stateful LSTM with its state carried across segments; the same reset every segment, the
baseline without memory; the article's stateless LSTM on windows of one segment), predicts the
held-out videos, and reports: a metrics table (markdown artifact), a PNG plot (linked
artifact) and TensorBoard scalars.

Deploy or run by path: ``flows/demo.py:demo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

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
    Recipe,
    SelectionConfig,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.demo import DemoMetrics, DemoPaths, DemoResult
from segflow.report import Score
from segflow.training import TrainReport
from tasks.demo import plot_task, publish_demo_report, score_task, synth_task

Kind = Literal["carried", "reset", "windowed"]
#: The demo's models: their tags and how each is trained (see :func:`train_params`).
MODELS: tuple[tuple[str, Kind], ...] = (
    ("demo-carried", "carried"),
    ("demo-reset", "reset"),
    ("demo-windowed", "windowed"),
)


@flow(name="segflow-demo")
def demo(params: DemoParams = DemoParams()) -> DemoResult:
    """Run synth → ingest → train (carried, reset, windowed) → predict → report."""
    paths = DemoPaths.under(Path(params.workdir).resolve())
    sources = synth_task(paths.sources, params)
    store = StoreConfig(url=paths.store)
    write = {"segment_length": params.segment_length}
    ingest(IngestParams(sources=sources, store=store, write=write))
    ids = sorted(Path(p).stem for p in sources)
    held_out = max(1, len(ids) // 4)
    train_ids, val_ids = ids[:-held_out], ids[-held_out:]
    where = paths.to_json()
    reports = {
        tag: train(train_params(params, where, store, train_ids, val_ids, tag, kind))
        for tag, kind in MODELS
    }
    predict(
        PredictParams(
            store=store,
            selection=SelectionConfig(ids=val_ids),
            checkpoints=CheckpointConfig(url=paths.checkpoints),
            model_tag="demo-carried",
            stream=StreamConfig(lanes=params.lanes, segment_length=params.segment_length),
        )
    )
    stored = score_task(paths.store, "demo-carried", val_ids)
    plot_task(paths.store, "demo-carried", val_ids[0], paths.plot, params.segment_length)
    result = DemoResult(_metrics(reports, stored), paths)
    publish_demo_report(result)
    return result


def train_params(
    params: DemoParams,
    where: Mapping[str, str],
    store: StoreConfig,
    train_ids: list[str],
    val_ids: list[str],
    tag: str,
    kind: Kind,
) -> TrainParams:
    """The parameters of training one of the demo's three models.

    Args:
        params: The demo's parameters (sizes, epochs, seed...).
        where: The demo's paths by name (:meth:`segflow.demo.DemoPaths.to_json`); the
            ``checkpoints`` and ``tensorboard`` entries are used.
        store: The store the videos were ingested into.
        train_ids: Sequences to train on.
        val_ids: Held-out sequences to validate on.
        tag: The model's tag.
        kind: ``carried`` (the state carried across segments), ``reset`` (reset every
            segment: the baseline without memory) or ``windowed`` (the article's stateless
            model on windows of ``segment_length`` frames, trained for the same number of
            frames through the model as the others: each window is ``segment_length``
            frames, so ``epochs / segment_length`` epochs, at least one).

    Returns:
        The train flow's parameters.
    """
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
    recipe, epochs = Recipe(), params.epochs
    if kind == "windowed":
        model = model.model_copy(update={"head": "many_to_one"})  # one output per window
        recipe = Recipe(time_steps=params.segment_length, batch_size=4 * params.lanes)
        epochs = max(1, params.epochs // params.segment_length)
    return TrainParams(
        store=store,
        selection=SelectionConfig(ids=train_ids),
        validation_ids=val_ids,
        model=model,
        stream=StreamConfig(lanes=params.lanes, segment_length=params.segment_length),
        checkpoints=CheckpointConfig(url=where["checkpoints"]),
        epochs=epochs,
        learning_rate=params.learning_rate,
        seed=params.seed,
        model_tag=tag,
        reset_every_segment=kind == "reset",
        recipe=recipe,
        tensorboard_dir=str(Path(where["tensorboard"]) / tag),
    )


def _metrics(reports: Mapping[str, TrainReport], stored: Score) -> DemoMetrics:
    return DemoMetrics(
        carried_val=reports["demo-carried"].history[-1]["val_accuracy"],
        reset_val=reports["demo-reset"].history[-1]["val_accuracy"],
        carried_pred=stored.accuracy,
        windowed_val=reports["demo-windowed"].history[-1]["val_accuracy"],
    )
