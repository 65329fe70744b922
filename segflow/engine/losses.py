"""Per-prediction losses and metrics of the three tasks, shared by every engine.

The model returns logits; :func:`elementwise` turns logits and labels into one loss and one
metric value per prediction (the outputs axis reduced), which the engines weigh (padding,
frames without a target) and sum:

- ``regression``: squared error (loss) and absolute error (metric ``mae``);
- ``binary``: sigmoid cross-entropy and accuracy at 0.5, averaged over the labels;
- ``multiclass``: softmax cross-entropy and accuracy, labels as class indices or one-hot.

With ``config.class_weights`` each prediction's loss is multiplied by the weight of its
label's class (Keras' ``class_weight``): the metric stays unweighted, and the engines still
divide by the number of predictions, so ``balanced`` weights (mean 1 over the training
labels) keep the loss's scale. Logits are taken in float32 (a mixed-precision model
computes in float16).
"""

from __future__ import annotations

import tensorflow as tf

from segflow.config import ModelConfig
from segflow.errors import ConfigError

__all__ = ["check_label_shape", "elementwise", "known_targets", "metric_name"]


def metric_name(config: ModelConfig) -> str:
    """Name of the metric reported next to the loss: ``accuracy``, or ``mae`` for regression.

    >>> metric_name(ModelConfig(frame_shape=(2,)))
    'mae'
    """
    return "mae" if config.task == "regression" else "accuracy"


def elementwise(
    config: ModelConfig, label_shape: tuple[int, ...], logits: tf.Tensor, labels: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-prediction loss and metric (the outputs axis reduced).

    Args:
        config: The model configuration (its ``task``).
        label_shape: Shape of one label (see :func:`check_label_shape`).
        logits: (..., outputs) raw model outputs.
        labels: (..., *label_shape) float labels.

    Returns:
        ``(loss, metric)``, each of the shape of ``logits`` without its last axis.
    """
    logits = tf.cast(logits, tf.float32)
    if config.task == "multiclass":
        if label_shape == ():
            classes = tf.cast(labels, tf.int32)
        else:
            classes = tf.argmax(labels, axis=-1, output_type=tf.int32)  # one-hot
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=logits)
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        hit = tf.cast(tf.equal(predicted, classes), tf.float32)
        return _weighed(config, loss, classes), hit
    if label_shape == ():
        labels = labels[..., tf.newaxis]
    if config.task == "binary":
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        loss = _weighed(config, loss, tf.cast(labels > 0.5, tf.int32))
        hit = tf.cast(tf.equal(logits > 0.0, labels > 0.5), tf.float32)
        return tf.reduce_mean(loss, axis=-1), tf.reduce_mean(hit, axis=-1)
    error = logits - labels
    return tf.reduce_mean(tf.square(error), axis=-1), tf.reduce_mean(tf.abs(error), axis=-1)


def _weighed(config: ModelConfig, loss: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """``loss`` times the weight of each prediction's class (as is, without class weights)."""
    if config.class_weights is None:
        return loss
    weights = tf.constant(config.class_weights, tf.float32)
    # A missing label was zeroed (class 0) by known_targets; its prediction weighs 0 anyway.
    return loss * tf.gather(weights, tf.clip_by_value(classes, 0, len(config.class_weights) - 1))


def check_label_shape(config: ModelConfig, label_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Return the shape of one label for ``config``; None picks the default.

    ``(outputs,)`` always fits; ``()`` fits ``multiclass`` (a class index) and single-output
    tasks. The default is ``()`` where it fits, else ``(outputs,)``.

    Raises:
        ConfigError: If ``label_shape`` does not fit the task and outputs.

    >>> check_label_shape(ModelConfig(frame_shape=(2,), outputs=3), None)
    (3,)
    """
    if label_shape is None:
        return () if config.task == "multiclass" or config.outputs == 1 else (config.outputs,)
    label_shape = tuple(label_shape)
    allowed: list[tuple[int, ...]] = [(config.outputs,)]
    if config.task == "multiclass" or config.outputs == 1:
        allowed.append(())
    if label_shape not in allowed:
        raise ConfigError(
            f"Received an invalid value for argument `label_shape` with task {config.task!r} and "
            f"{config.outputs} outputs, expected one of {allowed}, got {label_shape}"
        )
    return label_shape


def known_targets(labels: tf.Tensor, label_shape: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
    """Labels with missing ones zeroed, and a 0/1 weight per prediction: 0 where it is missing.

    A missing label (NaN: a gap in the data, or past the end of targets shifted by a horizon)
    takes no loss and no metric; zeroed, it cannot poison the gradient either.

    Args:
        labels: (..., *label_shape) float labels.
        label_shape: Shape of one label; a label with any NaN entry is missing.

    Returns:
        ``(labels, weights)``: weights of the labels' shape without ``label_shape``.
    """
    finite = tf.math.is_finite(labels)
    known = tf.reduce_all(finite, axis=-1) if label_shape else finite
    return tf.where(finite, labels, tf.zeros_like(labels)), tf.cast(known, tf.float32)
