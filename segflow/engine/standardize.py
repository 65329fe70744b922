"""Input standardization inside the model, from statistics of the training sequences.

Raw sensor and weather features span different scales (millimetres of rain next to degrees
and hectopascals), and an LSTM on them trains poorly. :func:`input_stats` computes each
feature's mean and variance over the training sequences in one streaming pass, a chunk at a
time, ignoring missing values (NaN); :class:`Standardize` applies ``(x - mean) / std`` inside
the graph. Its statistics are non-trainable weights of the model, so checkpoints, exports
and the stateless copy carry them like any weight: prediction standardizes exactly as
training did, without being told.

A missing input value is fed as 0 *after* standardizing, that is as the feature's mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from segflow.engine.chunks import ChunkSource

__all__ = ["FillMissing", "Standardize", "input_stats", "set_standardization"]

#: Variances below this are taken as 1: a constant feature is centred, not blown up.
_MIN_VARIANCE = 1e-12


@keras.saving.register_keras_serializable(package="segflow")
class Standardize(layers.Layer):
    """``(x - mean) / sqrt(variance)`` over the last axis, the statistics held as weights.

    Args:
        features: Size of the last axis (the statistics' shape).
    """

    def __init__(self, features: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features = int(features)
        self.mean = self.add_weight(
            shape=(self.features,), initializer="zeros", trainable=False, name="mean"
        )
        self.variance = self.add_weight(
            shape=(self.features,), initializer="ones", trainable=False, name="variance"
        )

    def call(self, inputs: Any) -> Any:
        return (inputs - self.mean) / ops.sqrt(self.variance)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "features": self.features}


@keras.saving.register_keras_serializable(package="segflow")
class FillMissing(layers.Layer):
    """Feed missing values (NaN) as 0: a NaN would poison a recurrent state for good."""

    def call(self, inputs: Any) -> Any:
        return ops.where(ops.isnan(inputs), ops.zeros_like(inputs), inputs)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


def input_stats(sources: Iterable[ChunkSource]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each feature (the rows' last axis) over every row of ``sources``.

    One pass, a chunk at a time; NaN values are left out of their feature's statistics.
    Sums are taken in float64 around the first chunk's mean, which keeps the variance exact
    for features far from zero (pressure in pascals). A feature with no value gets mean 0 and
    variance 1; a constant one variance 1.

    >>> from segflow.engine.chunks import ArrayChunks
    >>> rows = np.array([[1.0, 100.0], [3.0, np.nan], [5.0, 300.0]])
    >>> mean, variance = input_stats([ArrayChunks(rows, chunk_length=2)])
    >>> mean.tolist(), [round(float(v), 4) for v in variance]
    ([3.0, 200.0], [2.6667, 10000.0])
    """
    shift: np.ndarray | None = None
    count = total = squares = None
    for source in sources:
        for index in range(-(-source.length // source.chunk_length)):
            chunk = np.asarray(source.read_chunk(index), dtype=np.float64)
            rows = chunk.reshape(-1, chunk.shape[-1] if chunk.ndim > 1 else 1)
            known = np.isfinite(rows)
            if shift is None:
                seen = known.sum(axis=0)
                shift = np.where(
                    seen > 0, np.where(known, rows, 0).sum(axis=0) / np.maximum(seen, 1), 0
                )
                count, total, squares = (np.zeros(rows.shape[1]) for _ in range(3))
            assert count is not None and total is not None and squares is not None
            centred = np.where(known, rows - shift, 0.0)
            count += known.sum(axis=0)
            total += centred.sum(axis=0)
            squares += (centred**2).sum(axis=0)
    if shift is None or count is None or total is None or squares is None:
        return np.zeros(1, np.float32), np.ones(1, np.float32)
    safe = np.maximum(count, 1)
    mean = shift + total / safe
    variance = squares / safe - (total / safe) ** 2
    variance = np.where((count > 0) & (variance > _MIN_VARIANCE), variance, 1.0)
    mean = np.where(count > 0, mean, 0.0)
    return mean.astype(np.float32), variance.astype(np.float32)


def set_standardization(model: keras.Model, mean: np.ndarray, variance: np.ndarray) -> None:
    """Set the statistics of the model's :class:`Standardize` layer (a no-op without one)."""
    for layer in model.layers:
        if isinstance(layer, Standardize):
            layer.mean.assign(np.asarray(mean, np.float32).reshape(layer.features))
            layer.variance.assign(np.asarray(variance, np.float32).reshape(layer.features))
