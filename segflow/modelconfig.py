"""What a model looks like: :class:`ModelConfig`, everything needed to rebuild it.

Re-exported by :mod:`segflow.config`, where the run parameters that hold it live.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from storage.validation import invalid_argument, require_positive_int

__all__ = ["Cell", "Encoder", "Head", "ModelConfig", "Task"]

Encoder = Literal["none", "flatten", "avgpool", "conv"]
Cell = Literal["lstm", "gru", "simple_rnn", "conv_lstm"]
Head = Literal["many_to_many", "many_to_one"]
Task = Literal["regression", "binary", "multiclass"]

#: Frame ranks each encoder accepts.
_ENCODER_RANKS: dict[str, tuple[int, ...]] = {
    "none": (0, 1),
    "flatten": (0, 1, 2, 3),
    "avgpool": (2, 3),
    "conv": (2, 3),
}


class ModelConfig(BaseModel):
    """What the model looks like; everything needed to rebuild it.

    Attributes:
        frame_shape: Shape of one frame: ``()`` or ``(features,)`` for feature vectors,
            ``(height, width)`` or ``(height, width, channels)`` for images.
        input_dtype: Dtype of the frames fed to the model; ``uint8`` frames are scaled to
            ``[0, 1]`` float32 inside the graph.
        encoder: Per-frame encoder: ``none`` (feature vectors as they are), ``flatten``,
            ``avgpool`` (average pooling by ``pool_size``, then flatten) or ``conv`` (Conv2D +
            max pooling per entry of ``conv_filters``, then global average pooling).
        pool_size: Pooling window of the ``avgpool`` encoder.
        conv_filters: Filters of each Conv2D layer of the ``conv`` encoder.
        lstm_units: Units of each recurrent layer, first layer first (filters for
            ``conv_lstm``).
        normalize: Standardize each feature (the frames' last axis) inside the model with the
            mean and variance of the training sequences (set when training starts, stored
            with the weights). Float frames only.
        cell: The recurrent layers: ``lstm`` (default), ``gru``, ``simple_rnn``, or
            ``conv_lstm`` for image frames (ConvLSTM2D layers keep the spatial layout of the
            encoded frames, 3x3 kernels; global average pooling before the head).
        head: ``many_to_many`` (one prediction per frame) or ``many_to_one`` (one prediction
            per sequence: the output at its last real frame).
        task: ``regression`` (mean squared error), ``binary`` (sigmoid, one or several
            independent labels) or ``multiclass`` (softmax over ``outputs`` classes).
        outputs: Size of the head: regression targets, binary labels or classes.
        model_factory: Your own model: a factory ``package.module:function`` taking a
            :class:`~segflow.engine.factory.ModelSpec` (frame shape and dtype, outputs, task,
            head) builds it; the architecture fields must then keep their defaults.
        class_weights: Loss weight of each class, by class index (``outputs`` of them for
            ``multiclass``, two for a single ``binary`` label: 0 then 1); None weighs all
            alike. Training sets it from ``TrainParams.class_weight``. It shapes the loss,
            not the model, so :meth:`config_hash` leaves it out.

    Example:
        >>> config = ModelConfig(frame_shape=(4,), lstm_units=[16], task="binary")
        >>> len(config.config_hash())
        64
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    frame_shape: tuple[int, ...] = Field(..., description="Shape of one frame.")
    input_dtype: Literal["uint8", "float32"] = Field("float32", description="Frame dtype.")
    encoder: Encoder = Field("none", description="Per-frame encoder.")
    pool_size: int = Field(2, description="Pooling window of the avgpool encoder.")
    conv_filters: list[int] = Field([8, 16], description="Conv2D filters of the conv encoder.")
    lstm_units: list[int] = Field(
        [32], description="Units (conv_lstm: filters) of each recurrent layer."
    )
    cell: Cell = Field("lstm", description="Recurrent layers: lstm, gru, simple_rnn, conv_lstm.")
    normalize: bool = Field(
        False,
        description="Standardize float features inside the model, from training statistics.",
    )
    head: Head = Field("many_to_many", description="Prediction per frame or per sequence.")
    task: Task = Field("regression", description="Loss and output activation.")
    outputs: int = Field(1, description="Size of the head.")
    model_factory: str | None = Field(
        None, description="Your own model: a factory 'package.module:function' builds it."
    )
    class_weights: tuple[float, ...] | None = Field(
        None, description="Loss weight of each class, by class index (None: all alike)."
    )

    @field_validator("frame_shape")
    @classmethod
    def _check_frame_shape(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d <= 0 for d in value):
            raise invalid_argument("frame_shape", "a tuple of positive integers", value)
        return value

    @field_validator("lstm_units", "conv_filters")
    @classmethod
    def _check_positive_list(cls, value: list[int], info: Any) -> list[int]:
        if not value or any(v <= 0 for v in value):
            raise invalid_argument(info.field_name, "a non-empty list of positive integers", value)
        return value

    @field_validator("pool_size", "outputs")
    @classmethod
    def _check_positive(cls, value: int, info: Any) -> int:
        return require_positive_int(info.field_name, value)

    @field_validator("model_factory")
    @classmethod
    def _check_factory(cls, value: str | None) -> str | None:
        if value is not None and not _FACTORY_PATH.match(value):
            raise invalid_argument(
                "model_factory", "an import path 'package.module:function'", value
            )
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> ModelConfig:
        if self.model_factory is not None:
            self._check_factory_fields()
        ranks = _ENCODER_RANKS[self.encoder]
        if self.model_factory is None and len(self.frame_shape) not in ranks:
            raise ValueError(
                f"Received an invalid value for `frame_shape` with encoder {self.encoder!r}, "
                f"expected a shape of rank {' or '.join(map(str, ranks))}, "
                f"got {self.frame_shape}"
            )
        if self.cell == "conv_lstm" and (
            len(self.frame_shape) not in (2, 3) or self.encoder == "flatten"
        ):
            raise ValueError(
                "Received an invalid value for `cell` 'conv_lstm', expected image frames "
                "(height, width[, channels]) and an encoder that keeps them spatial (none, "
                f"avgpool or conv), got frame_shape {self.frame_shape} and encoder "
                f"{self.encoder!r}"
            )
        if self.normalize and self.input_dtype == "uint8":
            raise ValueError(
                "Received an invalid value for `normalize` with input_dtype 'uint8', expected "
                "False: uint8 frames are scaled to [0, 1], standardizing is for float features"
            )
        if self.task == "multiclass" and self.outputs < 2:
            raise ValueError(
                "Received an invalid value for `outputs` with task 'multiclass', expected at "
                f"least 2 classes, got {self.outputs}"
            )
        if self.class_weights is not None:
            self._check_class_weights(self.class_weights)
        return self

    def _check_class_weights(self, weights: tuple[float, ...]) -> None:
        classes = {"multiclass": self.outputs, "binary": 2 if self.outputs == 1 else 0}
        expected = classes.get(self.task, 0)
        if expected == 0:
            raise ValueError(
                f"Received `class_weights` with task {self.task!r} and {self.outputs} outputs, "
                "expected None: class weights need a multiclass head or one binary label"
            )
        if len(weights) != expected or min(weights) <= 0:
            raise ValueError(
                f"Received class_weights={list(weights)}, expected {expected} positive weights "
                f"(one per class of the {self.task} head)"
            )

    def _check_factory_fields(self) -> None:
        # The factory builds the architecture: a field it would ignore is refused, not dropped.
        fields = type(self).model_fields
        unused = [n for n in _ARCHITECTURE_FIELDS if getattr(self, n) != fields[n].default]
        if unused:
            raise ValueError(
                f"Received {', '.join(f'`{n}`' for n in unused)} with `model_factory` "
                f"{self.model_factory!r}, expected the defaults: the factory builds the model"
            )

    def config_hash(self) -> str:
        """Return a stable sha256 hex digest of the configuration (canonical JSON)."""
        # Fields added later are left out at their defaults, so a model's hash (which names
        # its checkpoints and predictions) does not change when segflow gains a field.
        data = self.model_dump(mode="json")
        data.pop("class_weights")  # the loss's business: the same model either way
        for name, default in _LATER_DEFAULTS.items():
            if data.get(name) == default:
                data.pop(name)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


#: Fields :class:`ModelConfig` gained after its hashes were first used, with their defaults.
_LATER_DEFAULTS: dict[str, Any] = {"cell": "lstm", "normalize": False, "model_factory": None}
#: What a model factory builds itself: with ``model_factory`` they keep their defaults.
_ARCHITECTURE_FIELDS = ("encoder", "pool_size", "conv_filters", "lstm_units", "cell", "normalize")
#: ``package.module:function`` (the function may be dotted: ``module:Builder.build``).
_FACTORY_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
