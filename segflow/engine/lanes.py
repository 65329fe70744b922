"""Per-lane LSTM state of a stateful model: read, write, reset.

Every stateful LSTM layer holds two (B, units) variables, ``h`` and ``c``; row ``i`` of each
is lane ``i``. The state is not part of the model's weights (``model.save_weights`` skips
it), so these helpers expose it for checkpoints, keyed ``"<layer>/h"`` and ``"<layer>/c"``.

:func:`reset_lanes` zeroes the rows of the lanes being reset and leaves every other row
bit-for-bit unchanged; it works eagerly and inside ``tf.function``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from segflow.engine.model import lstm_layers
from segflow.errors import ConfigError

__all__ = ["read_lane_state", "reset_all", "reset_lanes", "state_variables", "write_lane_state"]

_STATE_NAMES = ("h", "c")


def state_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """Map ``"<layer>/h"`` and ``"<layer>/c"`` to the state variables of every stateful LSTM.

    Raises:
        ConfigError: If the model has no stateful LSTM layer.
    """
    found: dict[str, keras.Variable] = {}
    for layer in lstm_layers(model):
        if layer.stateful and layer.states is not None:
            for name, variable in zip(_STATE_NAMES, layer.states, strict=True):
                found[f"{layer.name}/{name}"] = variable
    if not found:
        raise ConfigError(
            f"Model {model.name!r} has no stateful LSTM layer; expected a model built with "
            "`build_model(..., stateful=True)`."
        )
    return found


def read_lane_state(model: keras.Model) -> dict[str, np.ndarray]:
    """Return a copy of every lane's state: ``{"<layer>/h": (B, units), "<layer>/c": ...}``."""
    variables = state_variables(model)
    return {key: np.array(ops.convert_to_numpy(v.value)) for key, v in variables.items()}


def write_lane_state(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Set every lane's state from a dict as returned by :func:`read_lane_state`.

    Raises:
        ConfigError: If the keys or shapes do not match the model's state.
    """
    variables = state_variables(model)
    if set(state) != set(variables):
        raise ConfigError(
            f"Received an invalid value for argument `state`, expected keys {sorted(variables)}, "
            f"got {sorted(state)}"
        )
    for key, variable in variables.items():
        value = np.asarray(state[key], dtype=variable.dtype)
        if value.shape != tuple(variable.shape):
            raise ConfigError(
                f"Received an invalid value for argument `state[{key!r}]`, expected shape "
                f"{tuple(variable.shape)}, got {value.shape}"
            )
        variable.assign(value)


def reset_lanes(model: keras.Model, reset_mask: Any) -> None:
    """Zero the state of the lanes where ``reset_mask`` (B,) is True; keep the others.

    ``where`` rather than multiplying by a keep-mask, so a lane holding inf/NaN is still
    reset to exactly zero.
    """
    reset = ops.expand_dims(ops.cast(reset_mask, "bool"), -1)
    for variable in state_variables(model).values():
        variable.assign(ops.where(reset, ops.zeros_like(variable.value), variable.value))


def reset_all(model: keras.Model) -> None:
    """Zero the state of every lane."""
    for variable in state_variables(model).values():
        variable.assign(ops.zeros_like(variable.value))
