"""The windowed engine: steps, a fit that learns, checkpoints, errors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from segflow.checkpoint import CheckpointManager, Cursor
from segflow.engine.chunks import ArrayChunks, SequenceChunks
from segflow.engine.model import ModelConfig
from segflow.errors import ConfigError
from segflow.windowed import WindowEngine, WindowReader, window_dataset
from storage.local import LocalStore

CONFIG = ModelConfig(frame_shape=(1,), lstm_units=[16], head="many_to_one")


def noisy_sine(rows=1200, seed=0):
    """Next value of a noisy sine from the last 8: input row t is x_t, its target x_{t+1}."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows + 1)
    x = (np.sin(2 * np.pi * t / 23) + 0.05 * rng.normal(size=rows + 1)).astype(np.float32)
    return SequenceChunks("sine", ArrayChunks(x[:-1, None], 50), ArrayChunks(x[1:], 50))


def test_a_tiny_fit_learns_the_next_value():
    engine = WindowEngine(CONFIG, time_steps=8, batch_size=32, learning_rate=1e-2, seed=1)
    reader = WindowReader([noisy_sine()], time_steps=8, batch_size=32, seed=1)
    before = engine.evaluate(reader.iter_batches(0))
    for epoch in range(4):
        engine.fit_epoch(window_dataset(reader, epoch=epoch))
    after = engine.evaluate(reader.iter_batches(0))
    assert set(after) == {"loss", "mae"}
    assert after["loss"] < 0.2 * before["loss"] and after["loss"] < 0.05
    # traced once each, whatever the (last, smaller) batch sizes
    assert engine.train_step.experimental_get_tracing_count() == 1
    assert engine.eval_step.experimental_get_tracing_count() == 1


def test_fit_epoch_reports_every_step():
    engine = WindowEngine(CONFIG, time_steps=8, batch_size=64)
    reader = WindowReader([noisy_sine(200)], time_steps=8, batch_size=64)
    events = []
    metrics = engine.fit_epoch(reader.iter_batches(0), on_step=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert sum(e.frames for e in events) == reader.num_windows == 193
    assert np.isfinite(metrics["loss"])


def test_checkpoint_round_trip(tmp_path):
    store = LocalStore(tmp_path / "ckpt")
    engine = WindowEngine(CONFIG, time_steps=8, batch_size=16, seed=3)
    reader = WindowReader([noisy_sine(300)], time_steps=8, batch_size=16)
    engine.fit_epoch(reader.iter_batches(0))
    cursor = Cursor("train", epoch=1, step=3, ids=("sine",), lanes=16, segment_length=8)
    name = CheckpointManager(store, "runs-x").save(engine, cursor, CONFIG)
    fresh = WindowEngine(CONFIG, time_steps=8, batch_size=16, seed=9)
    assert CheckpointManager(store, "runs-x").restore(fresh, name) == cursor
    for a, b in zip(engine.model.get_weights(), fresh.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == int(engine.optimizer.iterations) > 0
    for a, b in zip(engine.optimizer.variables, fresh.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    wrong = WindowEngine(CONFIG, time_steps=4, batch_size=16)
    with pytest.raises(ConfigError, match="segment_length=8"):
        CheckpointManager(store, "runs-x").restore(wrong, name)


def test_stateless_copy_predicts_like_the_engine():
    engine = WindowEngine(CONFIG, time_steps=6, batch_size=4, seed=2)
    x = np.random.default_rng(0).normal(size=(5, 6, 1)).astype(np.float32)
    copy = engine.stateless_copy()
    assert copy is not engine.model
    out = copy({"frames": x, "mask": np.ones((5, 6), bool)})
    np.testing.assert_allclose(np.asarray(out), engine.predict_windows(x), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(config=CONFIG.model_copy(update={"head": "many_to_many"})), "head='many_to_one'"),
        (dict(time_steps=0), "argument `time_steps`"),
        (dict(batch_size=-1), "argument `batch_size`"),
        (dict(label_shape=(3,)), "argument `label_shape`"),
    ],
)
def test_errors(kwargs, match):
    args = {"config": CONFIG, "time_steps": 4, "batch_size": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        WindowEngine(args.pop("config"), **args)


def test_bad_batches_are_refused():
    engine = WindowEngine(CONFIG, time_steps=4, batch_size=2)
    frames, mask = np.zeros((2, 5, 1), np.float32), np.ones((2, 5), bool)
    with pytest.raises(ConfigError, match="`frames` of shape"):
        engine.fit_epoch([{"frames": frames, "mask": mask, "labels": np.zeros(2)}])
    with pytest.raises(ConfigError, match="without `labels`"):
        engine.evaluate([{"frames": frames[:, :4], "mask": mask[:, :4]}])
    with pytest.raises(ConfigError, match="`labels` of shape"):
        engine.evaluate([({"frames": frames[:, :4], "mask": mask[:, :4]}, tf.zeros((2, 3)))])
