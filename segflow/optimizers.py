"""The optimizer of a training run, from its :class:`~segflow.config.OptimizerConfig`.

Everything a schedule needs is in the optimizer's own variables (its step counter, its
learning rate) or in the training cursor (the plateau's best value and wait), so a resumed
run continues the schedule exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

import keras

from segflow.config import OptimizerConfig

__all__ = ["make_optimizer", "plateau_step"]


def make_optimizer(
    config: OptimizerConfig, learning_rate: float, total_steps: int
) -> keras.optimizers.Optimizer:
    """Adam or AdamW with the configured clipping and schedule.

    Args:
        config: The optimizer configuration.
        learning_rate: The learning rate (the peak of a cosine schedule).
        total_steps: Optimizer steps of the whole run (every epoch), for the cosine decay.

    >>> make_optimizer(OptimizerConfig(name="adamw", clipnorm=1.0), 1e-3, 100).global_clipnorm
    1.0
    """
    rate: Any = learning_rate
    if config.schedule == "cosine":
        warmup = min(config.warmup_steps, max(total_steps - 1, 0))
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else learning_rate,
            decay_steps=max(total_steps - warmup, 1),
            warmup_target=learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    options: dict[str, Any] = {"learning_rate": rate, "global_clipnorm": config.clipnorm}
    optimizer: keras.optimizers.Optimizer
    if config.name == "adamw":
        optimizer = keras.optimizers.AdamW(weight_decay=config.weight_decay, **options)
    else:
        optimizer = keras.optimizers.Adam(**options)
    if keras.config.dtype_policy().name == "mixed_float16":  # float16 gradients underflow
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def plateau_step(
    optimizer: keras.optimizers.Optimizer,
    config: OptimizerConfig,
    extra: dict[str, Any],
    metrics: dict[str, float],
) -> str | None:
    """After an epoch: lower the learning rate if the monitored value stalled; say so.

    The plateau's state (best value, epochs waited) lives in ``extra`` (the cursor), so a
    resumed run carries it on. Returns a line describing a change, or None.
    """
    if config.schedule != "plateau":
        return None
    value = metrics.get(config.plateau_monitor)
    if value is None:
        return None
    state = extra.setdefault("plateau", {"best": None, "wait": 0})
    better = value > state["best"] if config.plateau_monitor.endswith("accuracy") else None
    if state["best"] is None or (better if better is not None else value < state["best"]):
        state.update(best=value, wait=0)
        return None
    state["wait"] += 1
    if state["wait"] < config.plateau_patience:
        return None
    state["wait"] = 0
    new = float(optimizer.learning_rate) * config.plateau_factor
    optimizer.learning_rate.assign(new)
    return f"{config.plateau_monitor} stalled: learning rate lowered to {new:.3g}"
