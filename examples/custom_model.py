"""A model of your own, streamed by segflow: a per-frame CNN, two recurrent layers of different
kinds (a GRU inside a nested ``Sequential`` block, then an LSTM), a custom layer, a dense head::

    frames (B, T, *frame) ─ to_float ─ frame_cnn ─ block[gru] ─ feature_scale ─ lstm ─ head
    mask   (B, T) bool ──────────────────────────────┴─────────────────────────┘

Train it from the repository root (where ``examples`` is a package; elsewhere put the folder
holding your factory's module on ``PYTHONPATH``)::

    segflow train --store data --model-factory examples.custom_model:build --model-tag mine
    segflow predict --store data --model-tag mine        # the factory comes from the model

or from Python: ``ModelConfig(frame_shape=(8, 8), model_factory="examples.custom_model:build")``.
segflow calls :func:`build` with a :class:`~segflow.engine.factory.ModelSpec` for a stateful
copy (``spec.batch_size`` lanes) and a stateless one (any batch), so everything here follows
the spec, and every layer is named, so both copies have the same layers and state keys
(``block/gru/h``, ``lstm/h``, ``lstm/c``).

Frames arrive raw: ``uint8`` images are scaled to ``[0, 1]`` by segflow's
:class:`~segflow.engine.model.ToFloat`, which also feeds a missing (NaN) value as 0.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from segflow.engine.factory import ModelSpec, model_inputs
from segflow.engine.model import ToFloat

#: Sizes of the layers (read at build time, so a test can change the architecture).
FILTERS = 4
GRU_UNITS = 6
LSTM_UNITS = 5


@keras.saving.register_keras_serializable(package="custom_model")
class FeatureScale(layers.Layer):
    """Multiply every feature by a learned scale (one weight per feature, starting at 1).

    Registered serializable and with a ``get_config``, so the exported ``.keras`` file loads
    in Keras safe mode; element-wise, so it passes the mask on.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, inputs: Any) -> Any:
        return inputs * self.scale

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


@keras.saving.register_keras_serializable(package="custom_model")
class MaskedSequential(keras.Sequential):
    """A ``Sequential`` block that declares it takes a mask.

    A plain ``Sequential`` hands the mask it is given to its first layer but does not declare
    it, so Keras warns that the mask is lost downstream (it is not: each recurrent layer
    below gets it explicitly). A subclass, registered, so a loaded export declares it too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.supports_masking = True


def _seeded(spec: ModelSpec, offset: int, kind: str = "glorot") -> keras.initializers.Initializer:
    """An initializer seeded from ``spec.seed``: runs repeat, whatever else the process does."""
    seed = spec.seed * 1000 + offset
    if kind == "orthogonal":
        return keras.initializers.Orthogonal(seed=seed)
    return keras.initializers.GlorotUniform(seed=seed)


def _frame_cnn(spec: ModelSpec) -> keras.Sequential:
    """The per-frame CNN: 2-D convolution over images, 1-D over feature vectors."""
    shape = spec.frame_shape or (1,)
    if len(shape) == 1:
        conv: list[Any] = [
            layers.Reshape((*shape, 1), name="channel"),
            layers.Conv1D(
                FILTERS,
                3,
                padding="same",
                activation="relu",
                name="conv",
                kernel_initializer=_seeded(spec, 1),
            ),
            layers.Flatten(name="flatten"),
        ]
    else:
        channel = [layers.Reshape((*shape, 1), name="channel")] if len(shape) == 2 else []
        conv = [
            *channel,
            layers.Conv2D(
                FILTERS,
                3,
                padding="same",
                activation="relu",
                name="conv",
                kernel_initializer=_seeded(spec, 1),
            ),
            layers.MaxPooling2D(2, padding="same", name="pool"),
            layers.GlobalAveragePooling2D(name="global_pool"),
        ]
    return keras.Sequential([keras.Input(shape=shape), *conv], name="cnn")


def build(spec: ModelSpec) -> keras.Model:
    """Build the model ``spec`` asks for (segflow calls this; see the module docstring).

    Args:
        spec: Frame shape and dtype, outputs, head, and whether to build the stateful copy
            (``spec.batch_size`` lanes) or the stateless one.

    Returns:
        ``{"frames", "mask"}`` -> logits (B, T, outputs), or (B, outputs) for many_to_one.
    """
    inputs = model_inputs(spec)
    mask = inputs["mask"]
    frames = inputs["frames"]
    if not spec.frame_shape:  # scalar frames: one feature each
        frames = layers.Reshape((-1, 1), name="features")(frames)
    x = ToFloat(1 / 255 if spec.input_dtype == "uint8" else 1.0, name="to_float")(frames)
    x = layers.TimeDistributed(_frame_cnn(spec), name="frame_cnn")(x)
    gru = layers.GRU(
        GRU_UNITS,
        return_sequences=True,
        stateful=spec.stateful,
        name="gru",
        kernel_initializer=_seeded(spec, 2),
        recurrent_initializer=_seeded(spec, 3, "orthogonal"),
    )
    block = MaskedSequential(
        [keras.Input(batch_shape=(spec.batch_size, None, x.shape[-1])), gru], name="block"
    )
    x = block(x, mask=mask)
    x = FeatureScale(name="feature_scale")(x)
    x = layers.LSTM(
        LSTM_UNITS,
        return_sequences=spec.head == "many_to_many",
        stateful=spec.stateful,
        name="lstm",
        kernel_initializer=_seeded(spec, 4),
        recurrent_initializer=_seeded(spec, 5, "orthogonal"),
    )(x, mask=mask)
    logits = layers.Dense(spec.outputs, name="head", kernel_initializer=_seeded(spec, 6))(x)
    return keras.Model(inputs, logits, name="custom_stateful" if spec.stateful else "custom")
