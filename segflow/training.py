"""Training a model over stored sequences, resumable from checkpoints.

:func:`train` selects the complete sequences, shapes them by the run's recipe (inputs and
targets shifted by a horizon, :mod:`segflow.engine.shaping`), infers the model if none is
given, and streams every epoch through the feed the recipe asks for (:mod:`segflow.feeds`):
the stateful model over lanes of whole sequences (truncated BPTT), or the stateless one over
shuffled windows of ``time_steps`` rows. It


- checkpoints every ``checkpoints.every_steps`` optimizer steps and at the end of each epoch,
  under ``runs/train-<model_tag>/`` of the checkpoint store;
- resumes from the latest checkpoint when one exists: weights, optimizer slots, lane state
  and the cursor (epoch, step or batch, metric sums) are restored, so with op determinism
  enabled a resumed run reaches bit-for-bit the weights of an uninterrupted one;
- holds out validation sequences (``validation_ids``, ``validation_pattern``,
  ``validation_fraction``; never trained on) and evaluates them after each epoch, keeping the
  training lanes' state untouched;
- exports the model, with its recipe, under ``models/<model_tag>/`` when the last epoch ends;
- weighs the loss by class when ``class_weight`` asks (:mod:`segflow.classweights`), and
  computes in ``mixed_float16`` when ``mixed_precision`` asks (GPUs only,
  :mod:`segflow.precision`).

A resumed run carries on over the sequences its checkpoint records (``Cursor.ids``), even if
the selection would now give others (e.g. a store grown by an ingest meanwhile). A finished run
called again with the same parameters only reports (and re-exports if the export is missing).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from segflow.checkpoint import CheckpointManager, Cursor
from segflow.config import ModelConfig, TrainParams
from segflow.engine.standardize import input_stats, set_standardization
from segflow.errors import ConfigError
from segflow.feeds import TrainFeed, build_feed, means
from segflow.inference import class_names_of, infer_model_config
from segflow.optimizers import plateau_step
from segflow.precision import dtype_policy, gpu_count, using_policy
from segflow.progress import StepCallback, StepEvent
from segflow.registry import (
    best_run_key,
    export_model,
    export_prefix,
    exported_from,
    train_run_key,
)
from segflow.report import plot_history
from segflow.trainplan import (
    RESTARTED,
    class_weight_record,
    plan_run,
    segment_for,
    sequence_lengths,
    truncation_note,
    warm_start,
)
from storage.sequences import SequenceRepository

__all__ = ["CURVES_FILE", "TrainReport", "infer_model_config", "train"]  # inference's, too

#: The training curves' PNG, written beside the exported model.
CURVES_FILE = "curves.png"

# What tf.summary.scalar tags a value with, written directly: tf.summary.scalar needs the
# tensorboard package, while the event files need only TensorFlow.
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


@dataclass(frozen=True)
class TrainReport:
    """What a training run did.

    Attributes:
        epochs: Completed epochs.
        steps: Optimizer steps over the whole run (every call that resumed it).
        history: Per epoch: ``loss``, ``accuracy`` (``mae`` for regression) and, with
            validation sequences, ``val_loss`` and ``val_accuracy`` (``val_mae``).
        checkpoint: The last checkpoint written (or found).
        model_tag: The exported model's tag.
        config_hash: Hash of the model configuration.
        seconds: Wall time of this call.
        frames: Real frames trained on over the whole run (every epoch).
        ids: The training sequences, in schedule order.
        resumed_from: The checkpoint this call started from, if any.
        steps_run: Optimizer steps run by this call.
        truncation: How far the training gradient reaches (see :func:`truncation_note`).
        best_epoch: With early stopping, the epoch exported (best monitored value).
        stopped: With early stopping, why training stopped before ``epochs`` (None if not).
        class_weights: The loss weight of each class, by class index (None: all alike).
        curves: Where the training curves' PNG was written (beside the exported model), or
            None when there is none.
        restarts: Epochs restarted over training data that changed since their checkpoint
            (``on_changed_data='restart_epoch'``), each with its reason.
    """

    epochs: int
    steps: int
    history: list[dict[str, float]]
    checkpoint: str | None
    model_tag: str
    config_hash: str
    seconds: float
    frames: int
    ids: tuple[str, ...] = ()
    resumed_from: str | None = None
    steps_run: int = 0
    best_epoch: int | None = None
    stopped: str | None = None
    truncation: str = ""
    class_weights: tuple[float, ...] | None = None
    curves: str | None = None
    restarts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {**asdict(self), "ids": list(self.ids)}


# -- training ------------------------------------------------------------------------------


def train(params: TrainParams, *, on_step: StepCallback | None = None) -> TrainReport:
    """Train (or resume training) the model of ``params``; return what was done.

    Args:
        params: The run's parameters.
        on_step: Called after every optimizer step with a
            :class:`~segflow.progress.StepEvent`: ``frames`` the real frames of this step,
            ``step`` the optimizer steps done over the whole run (every call that resumed
            it), ``steps`` those of all epochs (``epochs`` times the steps per epoch),
            ``fraction`` their ratio and ``loss`` this step's mean loss. An exception it
            raises stops the run (the last checkpoint stays).

    Raises:
        ConfigError: On an empty selection, missing labels, a checkpoint of another model
            configuration, stream settings or class weights under the same ``model_tag``,
            class weights for a head without classes, or mixed precision without a GPU.
        SequenceNotFoundError, IncompleteSequenceError: On explicit ids that cannot be used.
        CheckpointError: If the latest checkpoint is corrupt.
    """
    started = time.perf_counter()
    policy = dtype_policy(params.mixed_precision, gpu_count() if params.mixed_precision else 0)
    with using_policy(policy):
        return _train(params, on_step, started)


def _train(params: TrainParams, on_step: StepCallback | None, started: float) -> TrainReport:
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    repo = SequenceRepository(params.store.open())
    ckpt_store = params.checkpoints.open()
    manager = CheckpointManager(
        ckpt_store, train_run_key(params.model_tag), keep=params.checkpoints.keep
    )
    best = (  # the best epoch's weights, when early stopping exports that epoch
        CheckpointManager(ckpt_store, best_run_key(params.model_tag), keep=1)
        if params.early_stopping
        else None
    )
    latest = manager.latest()
    start = (
        None if latest is not None or params.init_from is None else warm_start(ckpt_store, params)
    )
    if start is not None:  # the run takes the model it continues, and its recipe
        params = params.model_copy(update={"model": start.config, "recipe": start.recipe})
    ids, held, config, saved = plan_run(repo, manager, latest, params)
    if (  # finished, and exported: only report
        saved is not None
        and latest is not None
        and (saved.epoch >= params.epochs or saved.extra.get("stopped"))
        and exported_from(ckpt_store, params.model_tag) == _exported_name(latest, best)
    ):
        return _report(params, config, saved, latest, started, resumed_from=latest)
    params = segment_for(params, config, repo, ids)
    feed = build_feed(repo, ids, params, config, held)
    engine = feed.engine
    if latest is None:
        if start is not None:  # its weights, standardization statistics included
            engine.model.set_weights(start.weights)
        elif config.normalize:  # a resumed run restores the statistics with the weights
            sources = [seq.frames for seq in feed.sequences]  # opened once, by the feed
            set_standardization(engine.model, *input_stats(sources))
        cursor = _fresh_cursor(repo, ids, held, params, engine)
    else:
        cursor = manager.restore(engine, latest)  # weights, optimizer, lane state
        if saved is not None and saved.extra.get(RESTARTED):  # the epoch again, over new data
            extra = {k: v for k, v in saved.extra.items() if k != RESTARTED}
            restarts = [*cursor.extra.get("restarts", []), saved.extra[RESTARTED]]
            cursor = replace(saved, extra={**extra, "restarts": restarts})
    trainer = _Trainer(params, feed, manager, on_step, best)
    with trainer:
        cursor = trainer.run(cursor)
    name = trainer.last_checkpoint or latest
    exported = None if name is None else _exported_name(name, best)
    if exported is not None and exported_from(ckpt_store, params.model_tag) != exported:
        if best is not None:  # the best epoch is exported; the last stays for a resume
            best.restore(engine)
        meta = _export_meta(params, config, cursor, exported, manager.run_key)
        meta["class_names"] = list(class_names_of(repo, cursor.ids))
        export_model(ckpt_store, params.model_tag, engine, config, meta=meta)
        if cursor.extra["history"]:  # the training curves beside the model (models/<tag>/)
            curves = plot_history(cursor.extra["history"], title=params.model_tag)
            ckpt_store.write_bytes(f"{export_prefix(params.model_tag)}/{CURVES_FILE}", curves)
    return _report(params, config, cursor, name, started, latest, trainer.steps_run)


def _exported_name(latest: str, best: CheckpointManager | None) -> str:
    """The checkpoint the export should come from: the latest, or the best epoch's."""
    if best is None:
        return latest
    chosen = best.latest()
    return latest if chosen is None else f"{best.run_key}/{chosen}"


def _report(
    params: TrainParams,
    config: ModelConfig,
    cursor: Cursor,
    checkpoint: str | None,
    started: float,
    resumed_from: str | None,
    steps_run: int = 0,
) -> TrainReport:
    return TrainReport(
        epochs=cursor.epoch,
        steps=int(cursor.extra["steps"]),
        history=list(cursor.extra["history"]),
        checkpoint=checkpoint,
        model_tag=params.model_tag,
        config_hash=config.config_hash(),
        seconds=time.perf_counter() - started,
        frames=int(cursor.extra["frames"]),
        ids=cursor.ids,
        resumed_from=resumed_from,
        steps_run=steps_run,
        best_epoch=cursor.extra.get("best", {}).get("epoch"),
        truncation=truncation_note(
            config.head,
            cursor.extra.get("lengths", []),
            cursor.segment_length,
            params.recipe.windowed,
        ),
        stopped=cursor.extra.get("stopped"),
        class_weights=config.class_weights,
        curves=_curves_url(params),
        restarts=tuple(cursor.extra.get("restarts", ())),
    )


def _curves_url(params: TrainParams) -> str | None:
    """The URL of the exported model's training curves, if they were written."""
    key = f"{export_prefix(params.model_tag)}/{CURVES_FILE}"
    store = params.checkpoints.open()
    return f"{store.url.rstrip('/')}/{key}" if store.exists(key) else None


def _fresh_cursor(
    repo: SequenceRepository, ids: list[str], held: list[str], params: TrainParams, engine: Any
) -> Cursor:
    return Cursor(
        kind="train",
        epoch=0,
        step=0,
        ids=tuple(ids),
        lanes=engine.lanes,
        segment_length=engine.segment_length,
        extra={
            "history": [],
            "totals": _zero_totals(),
            "frames": 0,
            "steps": 0,
            "recipe": params.recipe.model_dump(mode="json"),
            "validation": list(held),
            "lengths": sequence_lengths(repo, ids),
            "class_weight": class_weight_record(params.class_weight),
        },
    )


def _zero_totals() -> dict[str, float]:
    return {"loss_sum": 0.0, "metric_sum": 0.0, "count": 0.0}


def _export_meta(
    params: TrainParams, config: ModelConfig, cursor: Cursor, checkpoint: str, run_key: str
) -> dict[str, Any]:
    return {
        "checkpoint": checkpoint,
        "run_key": run_key,
        "epochs": cursor.epoch,
        "steps": cursor.extra["steps"],
        "history": cursor.extra["history"],
        "ids": list(cursor.ids),
        "train_store": params.store.url,
        "lanes": cursor.lanes,
        "segment_length": cursor.segment_length,
        "recipe": params.recipe.model_dump(mode="json"),
        "init_from": params.init_from,
        "class_weight": class_weight_record(params.class_weight),
        "class_weights": None if config.class_weights is None else list(config.class_weights),
        "mixed_precision": params.mixed_precision,
    }


@dataclass
class _Trainer:
    """Runs the epochs of one :func:`train` call: steps, checkpoints, validation, TensorBoard."""

    params: TrainParams
    feed: TrainFeed
    manager: CheckpointManager
    on_step: StepCallback | None
    best: CheckpointManager | None = None
    last_checkpoint: str | None = None
    steps_run: int = 0
    _writer: Any = field(default=None, repr=False)
    _counts: list[int] | None = field(default=None, repr=False)

    def __enter__(self) -> _Trainer:
        if self.params.tensorboard_dir:
            self._writer = tf.summary.create_file_writer(self.params.tensorboard_dir)
        return self

    def __exit__(self, *exc: object) -> None:
        self.feed.engine.close()
        if self._writer is not None:
            self._writer.close()

    def run(self, cursor: Cursor) -> Cursor:
        """Run the epochs left after ``cursor``; return the final cursor."""
        while cursor.epoch < self.params.epochs and not cursor.extra.get("stopped"):
            cursor = self._epoch(cursor)
        return cursor

    def _epoch(self, cursor: Cursor) -> Cursor:
        per_epoch = self.feed.steps_in(cursor.epoch)
        extra = {**cursor.extra, "totals": dict(cursor.extra["totals"])}
        for index, frames, sums in self.feed.train(cursor.epoch, cursor.step):
            for key, value in sums.items():
                extra["totals"][key] += value
            extra["frames"] += frames
            extra["steps"] += 1
            self.steps_run += 1
            loss = sums["loss_sum"] / max(sums["count"], 1.0)
            self._scalars({"step/loss": loss}, extra["steps"])
            if extra["steps"] % self.params.checkpoints.every_steps == 0 and index + 1 < per_epoch:
                self._save(_advance(cursor, cursor.epoch, index + 1, extra))
            if self.on_step is not None:
                # Epochs may differ in steps (the lane order is shuffled): count them all.
                done_before, total = self._step_counts(cursor.epoch)
                position = done_before + index + 1
                self.on_step(
                    StepEvent(
                        frames=frames,
                        fraction=min(1.0, position / max(1, total)),
                        step=extra["steps"],
                        steps=total,
                        loss=loss,
                    )
                )
        metrics = means(extra["totals"], self.feed.engine.metric_name)
        metrics |= {f"val_{key}": value for key, value in self.feed.validate().items()}
        optimizer = self.feed.engine.optimizer
        metrics["learning_rate"] = float(optimizer.learning_rate)
        plateau_step(optimizer, self.params.optimizer, extra, metrics)
        self._scalars({f"epoch/{k}": v for k, v in metrics.items()}, cursor.epoch + 1)
        extra |= {"history": [*extra["history"], metrics], "totals": _zero_totals()}
        improved = self._track_best(extra, metrics, cursor.epoch + 1)
        done = _advance(cursor, cursor.epoch + 1, 0, extra)
        if improved and self.best is not None:  # first: a crash in between redoes the epoch
            engine = self.feed.engine
            self.best.save(engine, done, engine.config)
        self._save(done)
        return done

    def _step_counts(self, epoch: int) -> tuple[int, int]:
        """Steps of the epochs before ``epoch``, and of every epoch of the run."""
        if self._counts is None:
            self._counts = [self.feed.steps_in(e) for e in range(self.params.epochs)]
        return sum(self._counts[:epoch]), sum(self._counts)

    def _track_best(self, extra: dict[str, Any], metrics: dict[str, float], epoch: int) -> bool:
        """Record whether ``epoch`` is the best so far, and why training stops, if it does."""
        stop = self.params.early_stopping
        if stop is None:
            return False
        if stop.monitor not in metrics:
            raise ConfigError(
                f"Received early_stopping.monitor={stop.monitor!r}, expected one of the values "
                f"of the history {sorted(metrics)} (val_* ones need validation sequences)."
            )
        value, best = metrics[stop.monitor], extra.get("best")
        if best is None or stop.improves(value, than=best["value"]):
            extra["best"] = {"epoch": epoch, "value": value}
            return True
        if epoch - best["epoch"] >= stop.patience:
            extra["stopped"] = (
                f"{stop.monitor} did not improve by more than {stop.min_delta} in "
                f"{stop.patience} epochs after epoch {best['epoch']}"
            )
        return False

    def _save(self, cursor: Cursor) -> None:
        engine = self.feed.engine
        self.last_checkpoint = self.manager.save(engine, cursor, engine.config)

    def _scalars(self, values: dict[str, float], step: int) -> None:
        if self._writer is None:
            return
        with self._writer.as_default():
            for name, value in values.items():
                tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR)


def _advance(cursor: Cursor, epoch: int, step: int, extra: dict[str, Any]) -> Cursor:
    return Cursor(
        kind="train",
        epoch=epoch,
        step=step,
        ids=cursor.ids,
        lanes=cursor.lanes,
        segment_length=cursor.segment_length,
        extra={**extra, "totals": dict(extra["totals"])},
    )
