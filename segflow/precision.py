"""Mixed precision for a training run: the Keras dtype policy, and where it is refused.

``mixed_float16`` computes in float16 and keeps the weights in float32. It pays off on GPUs
with float16 units; on a CPU float16 arithmetic is emulated and only slows training down, so
a run asking for it without a GPU is refused rather than silently slowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from segflow.errors import ConfigError

__all__ = ["MIXED", "dtype_policy", "gpu_count", "using_policy"]

#: The Keras dtype policy of mixed precision.
MIXED = "mixed_float16"


def dtype_policy(mixed_precision: bool, gpus: int) -> str:
    """The Keras dtype policy of a run: ``mixed_float16`` when asked for on a GPU machine.

    Args:
        mixed_precision: Whether the run asks for mixed precision.
        gpus: GPUs visible to TensorFlow (see :func:`gpu_count`).

    Raises:
        ConfigError: If mixed precision is asked for without a GPU.

    >>> dtype_policy(False, 0), dtype_policy(True, 1)
    ('float32', 'mixed_float16')
    """
    if not mixed_precision:
        return "float32"
    if gpus < 1:
        raise ConfigError(
            "Received mixed_precision=True on a machine without a GPU, expected a GPU: "
            "float16 on a CPU is emulated and would only slow training down"
        )
    return MIXED


def gpu_count() -> int:
    """GPUs visible to TensorFlow."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


@contextmanager
def using_policy(policy: str) -> Iterator[None]:
    """Set Keras' global dtype policy to ``policy`` for the block, then restore the previous.

    Models built inside compute in the policy's dtype; their head should output float32
    (``Dense(..., dtype="float32")``) for stable losses and probabilities.
    """
    import keras

    if policy == keras.config.dtype_policy().name:
        yield  # nothing to change: other threads' models keep the policy they see
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
