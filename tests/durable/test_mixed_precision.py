"""Mixed precision: the dtype policy as a pure function of the option and the GPUs present."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from segflow.errors import ConfigError
from segflow.precision import MIXED, dtype_policy, gpu_count, using_policy
from segflow.training import train
from tests.durable.conftest import train_params


@pytest.mark.parametrize(
    ("mixed", "gpus", "policy"),
    [
        (False, 0, "float32"),  # the default, anywhere
        (False, 2, "float32"),  # a GPU alone does not switch it on
        (True, 1, MIXED),  # asked for, on a GPU
        (True, 4, MIXED),
    ],
)
def test_policy_choice(mixed: bool, gpus: int, policy: str) -> None:
    assert dtype_policy(mixed, gpus) == policy


def test_refused_without_a_gpu_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"mixed_precision=True.*without a GPU") as caught:
        dtype_policy(True, 0)
    assert "\n" not in str(caught.value) and "slow" in str(caught.value)


def test_policy_is_set_for_the_block_and_restored() -> None:
    before = keras.config.dtype_policy().name
    with using_policy(MIXED):
        assert keras.config.dtype_policy().name == MIXED
        assert keras.layers.Dense(2).dtype_policy.compute_dtype == "float16"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(RuntimeError), using_policy(MIXED):
        raise RuntimeError("a failed run")
    assert keras.config.dtype_policy().name == before


@pytest.mark.skipif(gpu_count() > 0, reason="refused only on a machine without a GPU")
def test_training_refuses_before_any_work(tmp_path: Path) -> None:
    params = train_params(str(tmp_path / "nothing"), str(tmp_path / "ckpt"), mixed_precision=True)
    with pytest.raises(ConfigError, match="without a GPU"):
        train(params)
    assert not (tmp_path / "ckpt").exists()


def test_a_mixed_model_steps_in_float16_with_float32_logits_and_a_scaled_loss() -> None:
    import numpy as np

    from segflow.config import OptimizerConfig
    from segflow.engine.engine import StreamingEngine
    from segflow.optimizers import make_optimizer
    from tests.engine.test_engine import feature_config, make_batches, random_sequences

    with using_policy(MIXED):  # CPUs compute float16 too, slowly: a few frames suffice
        optimizer = make_optimizer(OptimizerConfig(), 1e-2, total_steps=4)
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        config = feature_config(task="binary")
        engine = StreamingEngine(config, lanes=2, segment_length=3, optimizer=optimizer)
        assert engine.model.get_layer("head").compute_dtype == "float32"
        sequences = random_sequences([5, 3])
        labels = [(s[:, :2] > 0).astype(np.float32) for s in sequences]
        _, batches, _ = make_batches(sequences, 2, 3, labels=labels)
        before = [w.copy() for w in engine.model.get_weights()]
        metrics = engine.fit_epoch(batches)
        after = engine.model.get_weights()
    assert np.isfinite(metrics["loss"])
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
