"""The windowed engine: the article's stateless model, trained and run on windows of N rows.

Every batch holds independent windows (no state carried between batches, so they can be
shuffled)::

    frames (b, N, *frame_shape)   mask (b, N) bool   labels (b, *label_shape)

The model is :func:`~segflow.engine.model.build_model` with a free batch size, stateless,
with the ``many_to_one`` head: one output per window, at its last row. Loss and metric are
those of the stateful engine (:mod:`segflow.engine.losses`), averaged over windows. The
interface mirrors :class:`~segflow.engine.engine.StreamingEngine` where the two meet
(``lanes``/``segment_length`` are ``batch_size``/``time_steps``, so a
:class:`~segflow.checkpoint.CheckpointManager` checks a cursor against them alike).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from segflow.engine.engine import as_tensor, pipelined
from segflow.engine.losses import check_label_shape, elementwise, known_targets, metric_name
from segflow.engine.model import ModelConfig, activate, build_model
from segflow.errors import ConfigError
from segflow.progress import StepCallback, StepEvent
from storage.validation import require_positive_int

__all__ = ["WindowEngine"]

#: A batch as :class:`~segflow.windowed.reader.WindowReader` yields it, or as the window
#: dataset yields it (``({"frames", "mask"}, labels)``).
Batch = dict[str, Any] | tuple[dict[str, Any], Any]


class WindowEngine:
    """Own a stateless ``many_to_one`` model and train or run it on batches of windows.

    Args:
        config: The model configuration; its ``head`` must be ``many_to_one``.
        time_steps: Rows per window N.
        batch_size: Windows per training batch (a batch may hold fewer; the step functions
            accept any batch size and trace once).
        learning_rate: Learning rate of the default optimizer (Adam).
        label_shape: Shape of one target (see :func:`~segflow.engine.losses.check_label_shape`).
        seed: Seed of the initial weights.
        optimizer: A Keras optimizer; default Adam with ``learning_rate``.

    Raises:
        ConfigError: On a head other than ``many_to_one``, or a bad argument.

    Example:
        >>> config = ModelConfig(frame_shape=(3,), lstm_units=[4], head="many_to_one")
        >>> engine = WindowEngine(config, time_steps=5, batch_size=8)
        >>> engine.predict_windows(np.zeros((2, 5, 3), np.float32)).shape
        (2, 1)
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        time_steps: int,
        batch_size: int,
        learning_rate: float = 1e-3,
        label_shape: tuple[int, ...] | None = None,
        seed: int = 0,
        optimizer: keras.optimizers.Optimizer | None = None,
    ) -> None:
        if config.head != "many_to_one":
            raise ConfigError(
                f"Received an invalid value for argument `config` (head {config.head!r}), "
                "expected head='many_to_one': a windowed model makes one prediction per "
                "window, at its last row."
            )
        self.config = config
        self.seed = seed
        self.time_steps = require_positive_int("time_steps", time_steps)
        self.batch_size = require_positive_int("batch_size", batch_size)
        self.label_shape = check_label_shape(config, label_shape)
        self.model = build_model(config, batch_size=None, stateful=False, seed=seed)
        self.optimizer = optimizer or keras.optimizers.Adam(learning_rate=learning_rate)
        # Built eagerly so its variables exist before tracing and before a checkpoint restore.
        self.optimizer.build(self.model.trainable_variables)
        frames, mask, labels = self._specs()
        self.predict_step = tf.function(self._predict_step, input_signature=[frames, mask])
        self.train_step = tf.function(self._train_step, input_signature=[frames, mask, labels])
        self.eval_step = tf.function(self._eval_step, input_signature=[frames, mask, labels])

    # -- what the checkpoint manager and the stateful engine's callers expect ---------------

    @property
    def lanes(self) -> int:
        """Windows per batch: a cursor's ``lanes`` for this engine."""
        return self.batch_size

    @property
    def segment_length(self) -> int:
        """Rows per window: a cursor's ``segment_length`` for this engine."""
        return self.time_steps

    @property
    def metric_name(self) -> str:
        """Name of the metric reported next to the loss: ``accuracy``, or ``mae`` for regression."""
        return metric_name(self.config)

    def close(self) -> None:
        """Nothing to release: each pass's dataset iterator ends with its pass (the same
        interface as :meth:`segflow.engine.engine.StreamingEngine.close`)."""

    def checkpoint_objects(self) -> dict[str, Any]:
        """Objects to hand to ``tf.train.Checkpoint(**objects)``: weights and optimizer."""
        return {"model": self.model, "optimizer": self.optimizer}

    def stateless_copy(self) -> keras.Model:
        """A model with the current weights (what is exported), independent of this engine."""
        model = build_model(self.config, batch_size=None, stateful=False, seed=self.seed)
        model.set_weights(self.model.get_weights())
        return model

    # -- step functions (graph) -------------------------------------------------------------

    def _specs(self) -> list[tf.TensorSpec]:
        n = self.time_steps
        return [
            tf.TensorSpec((None, n, *self.config.frame_shape), self.config.input_dtype, "frames"),
            tf.TensorSpec((None, n), tf.bool, name="mask"),
            tf.TensorSpec((None, *self.label_shape), tf.float32, name="labels"),
        ]

    def _predict_step(self, frames: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Activated predictions (b, outputs) of a batch of windows."""
        return activate(self.config, self.model({"frames": frames, "mask": mask}, training=False))

    def _train_step(
        self, frames: tf.Tensor, mask: tf.Tensor, labels: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """One optimizer step on a batch; returns its loss/metric sums and window count."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model({"frames": frames, "mask": mask}, training=True)
            sums = self._sums(logits, labels)
            loss = sums["loss_sum"] / tf.maximum(sums["count"], 1.0)
            # A loss-scale optimizer (mixed precision) scales it; others return it as is.
            loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return sums

    def _eval_step(
        self, frames: tf.Tensor, mask: tf.Tensor, labels: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """Loss/metric sums and window count of a batch, without updating the weights."""
        logits = self.model({"frames": frames, "mask": mask}, training=False)
        return self._sums(logits, labels)

    def _sums(self, logits: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
        labels, weights = known_targets(labels, self.label_shape)
        loss, metric = elementwise(self.config, self.label_shape, logits, labels)
        return {
            "loss_sum": tf.reduce_sum(loss * weights),
            "metric_sum": tf.reduce_sum(metric * weights),
            "count": tf.reduce_sum(weights),
        }

    # -- loops (eager) ----------------------------------------------------------------------

    def fit_epoch(
        self, batches: Iterable[Batch], *, on_step: StepCallback | None = None
    ) -> dict[str, float]:
        """Train on every batch once; return the mean loss and metric over the windows.

        Args:
            batches: Reader batches (dicts with ``frames``, ``mask``, ``labels``) or the
                window dataset's ``(inputs, labels)`` elements.
            on_step: Called after every step (windows done, loss of the step).

        Returns:
            ``{"loss": ..., "mae": ...}`` (``"accuracy"`` for classification).
        """
        return self._run(self.train_step, batches, on_step)

    def evaluate(
        self, batches: Iterable[Batch], *, on_step: StepCallback | None = None
    ) -> dict[str, float]:
        """Like :meth:`fit_epoch` without updating the weights."""
        return self._run(self.eval_step, batches, on_step)

    def predict_windows(self, frames: Any) -> np.ndarray:
        """Activated predictions (b, outputs) for windows (b, N, *frame_shape), as float32."""
        frames = self._frames(frames)
        mask = tf.ones(tf.shape(frames)[:2], tf.bool)
        return np.asarray(self.predict_step(frames, mask), dtype=np.float32)

    def step_inputs(self, batch: Batch) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(frames, mask, labels)`` tensors of a batch, as the step functions take them.

        Raises:
            ConfigError: If the batch has no labels, or tensors of the wrong shapes.
        """
        inputs, labels = batch if isinstance(batch, tuple) else (batch, batch.get("labels"))
        if labels is None:
            raise ConfigError(
                "Received a batch without `labels`; training and evaluation need them."
            )
        frames = self._frames(inputs["frames"])
        mask = as_tensor(inputs["mask"])
        return frames, mask, self._labels(as_tensor(labels), int(frames.shape[0]))

    def _run(
        self,
        step_fn: Callable[..., dict[str, tf.Tensor]],
        batches: Iterable[Batch],
        on_step: StepCallback | None,
    ) -> dict[str, float]:
        totals = {"loss_sum": 0.0, "metric_sum": 0.0, "count": 0.0}
        run = lambda batch: step_fn(*self.step_inputs(batch))  # noqa: E731
        # A tf.data dataset prefetches on its own; other iterables get the next batch built
        # while a step runs.
        stream = (
            ((b, run(b)) for b in batches)
            if isinstance(batches, tf.data.Dataset)
            else pipelined(batches, run)
        )
        for step, (_, sums) in enumerate(stream, start=1):
            values = {key: float(value) for key, value in sums.items()}
            for key, value in values.items():
                totals[key] += value
            if on_step is not None:
                loss = values["loss_sum"] / max(values["count"], 1.0)
                on_step(StepEvent(frames=int(values["count"]), fraction=0.0, step=step, loss=loss))
        count = max(totals["count"], 1.0)
        return {"loss": totals["loss_sum"] / count, self.metric_name: totals["metric_sum"] / count}

    def _frames(self, frames: Any) -> tf.Tensor:
        value = as_tensor(frames)
        expected = (self.time_steps, *self.config.frame_shape)
        if value.shape.rank != len(expected) + 1 or tuple(value.shape[1:]) != expected:
            raise ConfigError(
                f"Received `frames` of shape {tuple(value.shape)}, expected (batch, *{expected}) "
                "(batch, time_steps, *frame_shape)."
            )
        dtype = tf.as_dtype(self.config.input_dtype)
        return value if value.dtype == dtype else tf.cast(value, dtype)

    def _labels(self, labels: tf.Tensor, batch: int) -> tf.Tensor:
        labels = labels if labels.dtype == tf.float32 else tf.cast(labels, tf.float32)
        expected = (batch, *self.label_shape)
        if tuple(labels.shape) == expected:
            return labels
        # One target per window either way: (b, 1) and (b,) are interchangeable.
        if self.label_shape in ((), (1,)) and int(np.prod(labels.shape)) == batch:
            return tf.reshape(labels, expected)
        raise ConfigError(
            f"Received `labels` of shape {tuple(labels.shape)}, expected {expected} "
            "(batch, *label_shape)."
        )
