"""Built-in recurrent cells (LSTM, GRU, SimpleRNN, ConvLSTM2D) keep segflow's guarantees, and
so does a model of the user's own (``custom``: ``examples/custom_model.py`` built in the engine
through ``ModelConfig(model_factory=...)``: a per-frame CNN, a GRU inside a nested
``Sequential``, an LSTM, a custom layer).

For each: streaming in segments over lanes equals one stateless pass over each whole
sequence (many-to-many and many-to-one, mixed lengths, more sequences than lanes), and
resetting one lane leaves every other lane's state bit-for-bit unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from segflow.config import ModelConfig
from segflow.engine.engine import StreamingEngine
from segflow.engine.lanes import read_lane_state, reset_lanes, state_shapes
from segflow.engine.model import activate
from segflow.engine.pipeline import StepReader
from segflow.errors import ConfigError

LENGTHS = (11, 4, 9, 7, 2)
CELLS = ["lstm", "gru", "simple_rnn", "conv_lstm", "custom"]


def _config(cell: str, head: str) -> ModelConfig:
    if cell == "custom":
        return ModelConfig(
            frame_shape=(6, 6), model_factory="examples.custom_model:build", head=head
        )
    if cell == "conv_lstm":
        return ModelConfig(
            frame_shape=(6, 6, 2),
            encoder="avgpool",
            pool_size=2,
            cell="conv_lstm",
            lstm_units=[3, 2],
            head=head,
        )
    return ModelConfig(frame_shape=(3,), cell=cell, lstm_units=[5, 4], head=head)


def _frames(config: ModelConfig, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.1, 10.0, int(np.prod(config.frame_shape))).reshape(config.frame_shape)
    return [(rng.normal(size=(n, *config.frame_shape)) * scale).astype(np.float32) for n in LENGTHS]


@pytest.mark.parametrize("head", ["many_to_many", "many_to_one"])
@pytest.mark.parametrize("cell", CELLS)
def test_segmented_streaming_equals_a_whole_sequence_pass(cell: str, head: str) -> None:
    config = _config(cell, head)
    frames = _frames(config, 0)
    engine = StreamingEngine(config, lanes=2, segment_length=3, seed=1)
    reader = StepReader.from_arrays(frames, lanes=2, segment_length=3)
    got = dict(engine.predict(reader.iter_batches(), reader.steps(), reader.lengths))
    whole = engine.stateless_copy()
    for i, x in enumerate(frames):
        logits = whole({"frames": x[None], "mask": np.ones((1, len(x)), bool)})
        want = np.asarray(activate(config, logits))[0]
        np.testing.assert_allclose(got[i], want, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_resetting_a_lane_leaves_the_others_bit_for_bit(cell: str) -> None:
    config = _config(cell, "many_to_many")
    engine = StreamingEngine(config, lanes=3, segment_length=4, seed=2)
    x = np.stack([f[:4] for f in _frames(config, 1)[:3] if len(f) >= 4][:2] * 2)[:3]
    engine.predict_step(x, np.ones((3, 4), bool), np.ones(3, bool))
    before = read_lane_state(engine.model)
    assert all(np.abs(v).sum() > 0 for v in before.values())
    reset_lanes(engine.model, np.array([False, True, False]))
    after = read_lane_state(engine.model)
    for key in before:
        np.testing.assert_array_equal(after[key][[0, 2]], before[key][[0, 2]])
        assert not after[key][1].any()


def test_state_shapes_name_every_layer_of_each_cell() -> None:
    gru = StreamingEngine(_config("gru", "many_to_many"), lanes=2, segment_length=2)
    assert state_shapes(gru.model) == {"gru_0/h": (5,), "gru_1/h": (4,)}
    conv = StreamingEngine(_config("conv_lstm", "many_to_one"), lanes=2, segment_length=2)
    assert state_shapes(conv.model) == {
        "conv_lstm_0/h": (3, 3, 3),
        "conv_lstm_0/c": (3, 3, 3),
        "conv_lstm_1/h": (3, 3, 2),
        "conv_lstm_1/c": (3, 3, 2),
    }
    custom = StreamingEngine(_config("custom", "many_to_many"), lanes=2, segment_length=2)
    assert state_shapes(custom.model) == {"block/gru/h": (6,), "lstm/h": (5,), "lstm/c": (5,)}


def test_conv_lstm_needs_image_frames() -> None:
    with pytest.raises(ValueError, match=r"conv_lstm.*image frames"):
        ModelConfig(frame_shape=(8,), cell="conv_lstm")
    with pytest.raises(ValueError, match=r"conv_lstm.*keeps them spatial"):
        ModelConfig(frame_shape=(8, 8), cell="conv_lstm", encoder="flatten")


def test_adding_the_cell_field_keeps_existing_hashes() -> None:
    # The hash names checkpoints and predictions: it must not change for LSTM models.
    config = ModelConfig(frame_shape=(4,))
    assert config.config_hash() == (
        "532766f70020a56aa8e416253a38615436ded11b466975dd6ec36a130f20b82e"
    )
    assert ModelConfig(frame_shape=(4,), cell="gru").config_hash() != config.config_hash()


def test_state_of_a_model_without_recurrent_layers_is_refused() -> None:
    import keras

    inputs = keras.Input(batch_shape=(2, None, 3))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(ConfigError, match="no stateful recurrent layer"):
        state_shapes(model)
