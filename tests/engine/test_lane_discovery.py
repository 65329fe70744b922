"""segflow finds every recurrent layer of a model, wherever the model keeps it."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from segflow.engine.lanes import check_streamable, read_lane_state, recurrent_layers
from segflow.errors import ConfigError


class Block(keras.layers.Layer):
    """A custom layer holding a recurrent layer as an attribute (not a model, no `.layers`)."""

    def __init__(self, units: int, stateful: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)
        self.rnn = keras.layers.GRU(units, stateful=stateful, return_sequences=True)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # Sublayers built here: a stateful GRU makes its state variables when built.
        self.dense.build(input_shape)
        self.rnn.build((*input_shape[:-1], self.units))

    def call(self, inputs: Any) -> Any:
        return self.rnn(self.dense(inputs))


def _model(stateful: bool, inner_stateful: bool | None = None) -> keras.Model:
    inner = stateful if inner_stateful is None else inner_stateful
    frames = keras.Input(batch_shape=(2, None, 3))
    x = Block(4, inner, name="block")(frames)
    x = keras.layers.LSTM(5, stateful=stateful, return_sequences=True, name="top")(x)
    return keras.Model(frames, x)


def test_a_recurrent_layer_inside_a_custom_layer_is_found_in_order() -> None:
    found = recurrent_layers(_model(stateful=True))
    assert [type(layer).__name__ for layer in found] == ["GRU", "LSTM"]


def test_its_state_is_per_lane_state_too() -> None:
    model = _model(stateful=True)
    model(np.ones((2, 3, 3), np.float32))  # builds and runs: the state is no longer zero
    state = read_lane_state(model)
    shapes = sorted(np.asarray(value).shape for value in state.values())
    assert shapes == [(2, 4), (2, 5), (2, 5)]  # GRU h; LSTM h and c
    assert all(np.abs(np.asarray(value)).sum() > 0 for value in state.values())


def test_a_stateless_recurrent_layer_inside_a_custom_layer_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"block.*stateful=False|stateful=False.*block"):
        check_streamable(_model(stateful=True, inner_stateful=False))


def test_a_recurrent_layer_inside_time_distributed_is_found() -> None:
    frames = keras.Input(batch_shape=(2, None, 6, 3))
    per_frame = keras.layers.TimeDistributed(keras.layers.SimpleRNN(4, stateful=True))
    x = keras.layers.LSTM(3, stateful=True, name="outer")(per_frame(frames))
    names = [type(layer).__name__ for layer in recurrent_layers(keras.Model(frames, x))]
    assert names == ["SimpleRNN", "LSTM"]
