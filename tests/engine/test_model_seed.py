"""Initial weights depend on the seed alone, not on whoever else draws from ``random``."""

from __future__ import annotations

import random
import threading

import numpy as np

from segflow.config import ModelConfig
from segflow.engine.model import build_model

CONFIG = ModelConfig(
    frame_shape=(8, 8, 3),
    input_dtype="uint8",
    encoder="conv",
    conv_filters=[4],
    lstm_units=[4, 3],
    task="binary",
)


def test_weights_ignore_other_threads_drawing_from_random() -> None:
    first = build_model(CONFIG, batch_size=2, stateful=True, seed=3).get_weights()
    done = threading.Event()
    thread = threading.Thread(target=lambda: [random.random() for _ in iter(done.is_set, True)])
    thread.start()
    try:
        random.seed(12345)  # and the global state itself moved on
        again = build_model(CONFIG, batch_size=2, stateful=True, seed=3).get_weights()
    finally:
        done.set()
        thread.join()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = build_model(CONFIG, batch_size=2, stateful=True, seed=4).get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
