"""Per-lane state of a stateful model: find it, read it, write it, reset it.

Every stateful recurrent layer of a model -- LSTM, GRU, SimpleRNN, ConvLSTM1D/2D/3D or any
``keras.layers.RNN`` subclass, at the top level or inside nested models and ``Sequential``
blocks -- holds its state in variables whose first axis is the lane: an LSTM two (B, units)
variables ``h`` and ``c``, a GRU or SimpleRNN one ``h``, a ConvLSTM2D two (B, H, W, filters).
The state is not part of the model's weights (``model.save_weights`` skips it), so these
helpers expose it for checkpoints and predictions, keyed ``"<layer path>/<state name>"``
(``"lstm_0/h"``, ``"block/gru/h"``; an RNN of another cell has ``s0``, ``s1``, ...).

:func:`reset_lanes` zeroes the rows of the lanes being reset and leaves every other row
bit-for-bit unchanged; it works eagerly and inside ``tf.function``. :func:`check_streamable`
refuses, before any work, a model segflow cannot stream segment by segment correctly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from segflow.errors import ConfigError

__all__ = [
    "check_streamable",
    "read_lane_state",
    "recurrent_layers",
    "reset_all",
    "reset_lanes",
    "state_shapes",
    "state_variables",
    "write_lane_state",
]


def _sublayers(layer: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """Every layer inside ``layer``, depth first, in order, each once: nested models and
    ``Sequential`` blocks, and the layers a custom layer or a wrapper (``TimeDistributed``)
    holds as attributes."""
    seen = set() if seen is None else seen
    # Models list their layers; any other layer tracks the layers assigned to it in
    # `_layers` (Keras has no public name for those).
    inner_layers = getattr(layer, "layers", None)
    if inner_layers is None:
        inner_layers = getattr(layer, "_layers", None)
    for inner in inner_layers or ():
        if id(inner) in seen:
            continue
        seen.add(id(inner))
        yield inner
        yield from _sublayers(inner, seen)


def recurrent_layers(model: keras.Model) -> list[Any]:
    """The model's recurrent layers (``keras.layers.RNN`` subclasses), nested ones included,
    in the order they appear: a stateful model's state lives in these."""
    return [layer for layer in _sublayers(model) if isinstance(layer, layers.RNN)]


def check_streamable(model: keras.Model) -> None:
    """Refuse a model segflow cannot stream segment by segment without changing its results.

    Raises:
        ConfigError: Naming the layer: a ``Bidirectional`` layer or ``go_backwards=True``
            (they read the future of a segment); a recurrent layer with ``stateful=False``
            (it would forget at every segment boundary); or no stateful recurrent layer.
    """
    found = False
    for layer in _sublayers(model):
        where = f"layer {getattr(layer, 'path', layer.name)!r} of model {model.name!r}"
        if isinstance(layer, layers.Bidirectional):
            raise ConfigError(
                f"Cannot stream {where}: a Bidirectional layer reads each segment backwards "
                "too, so its outputs depend on frames that have not arrived yet."
            )
        if not isinstance(layer, layers.RNN):
            continue
        if getattr(layer, "go_backwards", False):
            raise ConfigError(
                f"Cannot stream {where}: go_backwards=True reads each segment from its end, "
                "so its outputs depend on frames that have not arrived yet."
            )
        if not layer.stateful:
            raise ConfigError(
                f"Cannot stream {where}: it has stateful=False, so it would forget everything "
                "at every segment boundary; build it with stateful=True (the factory's "
                "spec.stateful)."
            )
        found = True
    if not found:
        raise ConfigError(
            f"Model {model.name!r} has no stateful recurrent layer (LSTM, GRU, SimpleRNN, "
            "ConvLSTM or another keras.layers.RNN); segflow streams state from segment to "
            "segment, so it needs at least one."
        )


def _state_names(layer: Any, count: int) -> tuple[str, ...]:
    if isinstance(layer, (layers.LSTM, layers.ConvLSTM1D, layers.ConvLSTM2D, layers.ConvLSTM3D)):
        return ("h", "c")
    if isinstance(layer, (layers.GRU, layers.SimpleRNN)) and count == 1:
        return ("h",)
    return tuple(f"s{i}" for i in range(count))


def state_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """Map ``"<layer path>/<name>"`` to every state variable of the model's stateful layers.

    Raises:
        ConfigError: If the model has no stateful recurrent layer.
    """
    found: dict[str, keras.Variable] = {}
    for layer in recurrent_layers(model):
        if layer.stateful and layer.states is not None:
            states = list(layer.states)
            path = getattr(layer, "path", None) or layer.name
            for name, variable in zip(_state_names(layer, len(states)), states, strict=True):
                found[f"{path}/{name}"] = variable
    if not found:
        raise ConfigError(
            f"Model {model.name!r} has no stateful recurrent layer; expected a model built "
            "with `build_model(..., stateful=True)`."
        )
    return found


def state_shapes(model: keras.Model) -> dict[str, tuple[int, ...]]:
    """The shape of one lane's row of every state variable: ``{"lstm_0/h": (units,), ...}``."""
    return {key: tuple(int(n) for n in v.shape[1:]) for key, v in state_variables(model).items()}


def read_lane_state(model: keras.Model) -> dict[str, np.ndarray]:
    """Return a copy of every lane's state: ``{"<layer>/h": (B, ...), ...}``."""
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
    reset = ops.cast(reset_mask, "bool")
    for variable in state_variables(model).values():
        lanes = ops.reshape(reset, (-1,) + (1,) * (len(variable.shape) - 1))
        variable.assign(ops.where(lanes, ops.zeros_like(variable.value), variable.value))


def reset_all(model: keras.Model) -> None:
    """Zero the state of every lane."""
    for variable in state_variables(model).values():
        variable.assign(ops.zeros_like(variable.value))
