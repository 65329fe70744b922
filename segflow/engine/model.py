"""The stateful recurrent model: configuration and Keras 3 construction.

A model is a frame encoder, a stack of recurrent layers (LSTM by default; GRU, SimpleRNN, or
ConvLSTM2D over spatial frames, per ``ModelConfig.cell``) and a dense head::

    frames (B, T, *frame) ─ to_float ─ encoder ─ lstm_0 … lstm_{n-1} ─ head ─ logits
    mask   (B, T) bool ─────────────────────────┴──────┘  (given to every recurrent layer)

Two copies are built from one :class:`ModelConfig`: a *stateful* copy with a fixed batch
(the lanes) that streams segments and keeps each lane's ``h``/``c`` between calls, and a
*stateless* copy for whole-sequence passes. Both have the same layer names and weight order,
so ``stateless.set_weights(stateful.get_weights())`` transfers the weights; the LSTM state
variables are not weights.

The mask is an explicit input rather than a ``Masking`` layer, so padded frames need not be
zero: on a padded timestep every LSTM layer carries its state unchanged.

The model returns *logits* (raw scores); :func:`activate` turns them into predictions
(sigmoid for ``binary``, softmax for ``multiclass``, identity for ``regression``). Losses are
computed from the logits, which is numerically safer than from probabilities.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from segflow.config import ModelConfig
from segflow.engine.factory import ModelSpec, build_from_factory
from segflow.engine.standardize import FillMissing, Standardize
from segflow.errors import ConfigError
from storage.validation import invalid_argument, require_positive_int

__all__ = ["FrameEncoder", "ModelConfig", "ToFloat", "activate", "build_model"]


@keras.saving.register_keras_serializable(package="segflow")
class ToFloat(layers.Layer):
    """Cast frames to float32, scaling ``uint8`` to ``[0, 1]`` and feeding NaN as 0 (in the graph).

    Decoding to float on the host would quadruple the bytes moved per frame, so frames stay
    ``uint8`` until they reach the model.
    """

    def __init__(self, scale: float = 1.0, fill_missing: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = scale
        self.fill_missing = fill_missing

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        if self.fill_missing and inputs.dtype != "uint8":
            # A missing value (NaN) would poison a recurrent state for the rest of the
            # sequence: it is fed as 0.
            x = ops.where(ops.isnan(x), ops.zeros_like(x), x)
        return x * self.scale if self.scale != 1.0 else x

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "fill_missing": self.fill_missing}


@keras.saving.register_keras_serializable(package="segflow")
class FrameEncoder(layers.Layer):
    """Encode every frame of a (B, T, *frame_shape) batch to a (B, T, features) vector.

    Batch and time are merged so the per-frame layers run once on (B*T, *frame) rather than
    in a per-timestep loop.

    Args:
        kind: ``none``, ``flatten``, ``avgpool`` or ``conv`` (see :class:`ModelConfig`).
        frame_shape: Shape of one frame.
        pool_size: Pooling window of ``avgpool``.
        conv_filters: Filters of the ``conv`` layers.
        seed: Seed of the conv kernels' initial values.
        spatial: Keep images spatial: (B, T, H', W', C') without the final flatten or
            global pooling (what a ConvLSTM takes).
    """

    def __init__(
        self,
        kind: str,
        frame_shape: tuple[int, ...],
        pool_size: int = 2,
        conv_filters: tuple[int, ...] = (8, 16),
        seed: int = 0,
        spatial: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.frame_shape = tuple(frame_shape)
        self.pool_size = pool_size
        self.conv_filters = tuple(conv_filters)
        self.seed = seed
        self.spatial = spatial
        self.frame_model = _frame_model(
            kind, self.frame_shape, pool_size, self.conv_filters, seed, spatial=spatial
        )
        if self.frame_model is None:
            self.encoded: tuple[int, ...] = self.frame_shape
        else:
            self.encoded = tuple(int(n) for n in self.frame_model.output_shape[1:])

    @property
    def features(self) -> int:
        """Values per encoded frame (its last axis)."""
        return self.encoded[-1]

    def call(self, inputs: Any) -> Any:
        if self.frame_model is None:
            return inputs
        shape = ops.shape(inputs)
        frames = ops.reshape(inputs, (-1, *self.frame_shape))
        encoded = self.frame_model(frames)
        return ops.reshape(encoded, (shape[0], shape[1], *self.encoded))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[1], *self.encoded)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "kind": self.kind,
            "frame_shape": self.frame_shape,
            "pool_size": self.pool_size,
            "conv_filters": self.conv_filters,
            "seed": self.seed,
            "spatial": self.spatial,
        }


def _seeded(seed: int, offset: int, kind: str = "glorot") -> keras.initializers.Initializer:
    """An initializer with an explicit seed.

    Unseeded Keras initializers draw their seed from Python's global ``random``, which other
    threads in the process (Prefect's services, for one) also draw from, so the initial
    weights of a run would depend on what else was running.
    """
    value = seed * 1000 + offset
    if kind == "orthogonal":
        return keras.initializers.Orthogonal(seed=value)
    return keras.initializers.GlorotUniform(seed=value)


def _frame_model(
    kind: str,
    frame_shape: tuple[int, ...],
    pool_size: int,
    conv_filters: tuple[int, ...],
    seed: int = 0,
    *,
    spatial: bool = False,
) -> keras.Sequential | None:
    """The per-frame layers, or None when frames are already what the recurrent layers take."""
    if kind in ("none", "flatten") and len(frame_shape) == 1:
        return None
    if spatial and kind == "none" and len(frame_shape) == 3:
        return None
    # Explicit layer names keep the stateful and stateless copies identical.
    stack: list[Any] = [keras.Input(shape=frame_shape)]
    if (spatial or kind in ("avgpool", "conv")) and len(frame_shape) == 2:
        stack.append(layers.Reshape((*frame_shape, 1), name="add_channel"))
    if kind == "avgpool":
        stack.append(layers.AveragePooling2D(pool_size, padding="same", name="avgpool"))
    elif kind == "conv":
        for i, filters in enumerate(conv_filters):
            stack.append(
                layers.Conv2D(
                    filters,
                    3,
                    padding="same",
                    activation="relu",
                    name=f"conv_{i}",
                    kernel_initializer=_seeded(seed, 500 + i),
                )
            )
            stack.append(layers.MaxPooling2D(2, padding="same", name=f"maxpool_{i}"))
        if not spatial:
            stack.append(layers.GlobalAveragePooling2D(name="global_avgpool"))
    if kind != "conv" and not spatial:
        # Rank-0 frames become one feature; images become one vector.
        stack.append(layers.Flatten(name="flatten"))
    return keras.Sequential(stack, name="frame_model")


def build_model(
    config: ModelConfig, *, batch_size: int | None, stateful: bool, seed: int = 0
) -> keras.Model:
    """Build the model described by ``config``.

    Args:
        config: The model configuration.
        batch_size: Fixed batch size (the number of lanes); required when ``stateful``,
            may be None otherwise.
        stateful: Whether the LSTM layers keep their state between calls.
        seed: Seed of the initial weights (every initializer is seeded explicitly).

    Returns:
        A functional model taking ``{"frames": (B, T, *frame_shape), "mask": (B, T) bool}``
        and returning logits, (B, T, outputs) for ``many_to_many`` or (B, outputs) for
        ``many_to_one`` (the output at each row's last unmasked frame).

    Raises:
        ConfigError: If ``stateful`` and ``batch_size`` is not a positive integer, or the
            model factory of ``config.model_factory`` cannot be imported or returns a model
            that breaks segflow's contract (see :mod:`segflow.engine.factory`).
    """
    if stateful or batch_size is not None:
        expected = "a positive integer" if stateful else "a positive integer or None"
        try:
            require_positive_int("batch_size", batch_size)
        except ConfigError:
            raise invalid_argument("batch_size", expected, batch_size) from None
    if config.model_factory is not None:
        spec = ModelSpec.from_config(config, batch_size=batch_size, stateful=stateful, seed=seed)
        return build_from_factory(config.model_factory, spec)
    frames = keras.Input(
        batch_shape=(batch_size, None, *config.frame_shape), dtype=config.input_dtype, name="frames"
    )
    mask = keras.Input(batch_shape=(batch_size, None), dtype="bool", name="mask")
    scale = 1.0 / 255.0 if config.input_dtype == "uint8" else 1.0
    x = ToFloat(scale, fill_missing=not config.normalize, name="to_float")(frames)
    if config.normalize:  # statistics set from the training data (see engine.standardize)
        features = config.frame_shape[-1] if config.frame_shape else 1
        if not config.frame_shape:
            x = layers.Reshape((-1, 1), name="add_feature")(x)
        x = Standardize(features, name="standardize")(x)
        x = FillMissing(name="fill_missing")(x)
    x = FrameEncoder(
        config.encoder,
        config.frame_shape,
        config.pool_size,
        tuple(config.conv_filters),
        seed=seed,
        spatial=config.cell == "conv_lstm",
        name="encoder",
    )(x)
    last = len(config.lstm_units) - 1
    for i, units in enumerate(config.lstm_units):
        sequences = i < last or config.head == "many_to_many"
        x = _recurrent(config.cell, units, i, sequences, stateful, seed)(x, mask=mask)
    if config.cell == "conv_lstm":  # (.., H', W', filters) -> (.., filters)
        pool = layers.GlobalAveragePooling2D(name="spatial_avgpool")
        x = layers.TimeDistributed(pool, name="spatial_pool")(x) if len(x.shape) == 5 else pool(x)
    # float32 logits under a mixed-precision policy too: softmax and losses need the range.
    logits = layers.Dense(
        config.outputs, name="head", kernel_initializer=_seeded(seed, 999), dtype="float32"
    )(x)
    kind = "stateful" if stateful else "stateless"
    return keras.Model({"frames": frames, "mask": mask}, logits, name=f"segflow_{kind}")


#: The Keras layer and name prefix of each built-in cell (``lstm_<i>`` as ever for LSTM).
_CELLS: dict[str, tuple[type[layers.Layer], str]] = {
    "lstm": (layers.LSTM, "lstm"),
    "gru": (layers.GRU, "gru"),
    "simple_rnn": (layers.SimpleRNN, "simple_rnn"),
    "conv_lstm": (layers.ConvLSTM2D, "conv_lstm"),
}


def _recurrent(
    cell: str, units: int, index: int, sequences: bool, stateful: bool, seed: int
) -> layers.Layer:
    """Recurrent layer ``index`` of a stack, seeded (kernels Glorot, recurrent orthogonal)."""
    kind, prefix = _CELLS[cell]
    options: dict[str, Any] = {
        "return_sequences": sequences,
        "stateful": stateful,
        "name": f"{prefix}_{index}",
        "kernel_initializer": _seeded(seed, 2 * index + 1),
        "recurrent_initializer": _seeded(seed, 2 * index + 2, "orthogonal"),
    }
    if cell == "conv_lstm":
        return kind(units, 3, padding="same", **options)
    return kind(units, **options)


def activate(config: ModelConfig, logits: Any) -> Any:
    """Turn logits into predictions: sigmoid (binary), softmax (multiclass) or identity."""
    if config.task == "binary":
        return ops.sigmoid(logits)
    if config.task == "multiclass":
        return ops.softmax(logits, axis=-1)
    return logits
