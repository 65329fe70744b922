"""``segflow train``'s options for what a config file can also set: early stopping, the
optimizer and its schedule, class weights, mixed precision.

Each maps onto one field of :class:`~segflow.config.TrainParams`; an option given on the
command line overrides that field of a ``--config`` file (unset ones leave the file alone).
Nothing here imports the engine's stack.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from segflow_cli.common import fail

__all__ = [
    "ClassWeightOption",
    "ClipnormOption",
    "MinDeltaOption",
    "MixedPrecisionOption",
    "MonitorOption",
    "OptimizerOption",
    "PatienceOption",
    "ScheduleOption",
    "WarmupOption",
    "WeightDecayOption",
    "parse_class_weight",
    "training_overrides",
]

_STOP = "Early stopping"
PatienceOption = Annotated[
    int | None,
    typer.Option(
        help="Stop after this many epochs without improvement (turns early stopping on).",
        rich_help_panel=_STOP,
    ),
]
MinDeltaOption = Annotated[
    float | None,
    typer.Option(help="Smallest change that counts as better.", rich_help_panel=_STOP),
]
MonitorOption = Annotated[
    str | None,
    typer.Option(
        help="Value watched: val_loss, val_accuracy, val_mae, loss... (default val_loss).",
        rich_help_panel=_STOP,
    ),
]
_OPT = "Optimizer"
OptimizerOption = Annotated[
    str | None, typer.Option(help="adam or adamw (weight decay).", rich_help_panel=_OPT)
]
WeightDecayOption = Annotated[
    float | None, typer.Option(help="AdamW's decoupled weight decay.", rich_help_panel=_OPT)
]
ClipnormOption = Annotated[
    float | None,
    typer.Option(help="Clip gradients to this global norm.", rich_help_panel=_OPT),
]
ScheduleOption = Annotated[
    str | None,
    typer.Option(
        help="Learning-rate schedule: constant, cosine (with --warmup-steps) or plateau.",
        rich_help_panel=_OPT,
    ),
]
WarmupOption = Annotated[
    int | None,
    typer.Option(help="Linear warm-up steps of the cosine schedule.", rich_help_panel=_OPT),
]
ClassWeightOption = Annotated[
    str | None,
    typer.Option(
        help="Weigh the loss by class: 'balanced', or CLASS=WEIGHT pairs, e.g. '0=1,1=5'.",
        rich_help_panel=_OPT,
    ),
]
MixedPrecisionOption = Annotated[
    bool | None,
    typer.Option(
        "--mixed-precision/--no-mixed-precision",
        help="Compute in float16 with float32 weights (GPUs only; refused without one).",
        rich_help_panel=_OPT,
    ),
]


def parse_class_weight(text: str | None) -> str | dict[int, float] | None:
    """``--class-weight``: ``balanced``, or ``CLASS=WEIGHT`` pairs separated by commas.

    >>> parse_class_weight("balanced"), parse_class_weight("0=1, 1=5.5")
    ('balanced', {0: 1.0, 1: 5.5})

    Raises:
        typer.Exit: (usage error, one line) on anything else.
    """
    if text is None or text.strip() == "balanced":
        return None if text is None else "balanced"
    try:
        pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
        return {int(key): float(value) for key, value in pairs}
    except ValueError:
        raise fail(
            f"Received --class-weight {text!r}, expected 'balanced' or CLASS=WEIGHT pairs "
            "such as '0=1,1=5'."
        ) from None


def training_overrides(
    *,
    patience: int | None = None,
    min_delta: float | None = None,
    monitor: str | None = None,
    optimizer: str | None = None,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    schedule: str | None = None,
    warmup_steps: int | None = None,
    class_weight: str | None = None,
    mixed_precision: bool | None = None,
) -> dict[str, Any]:
    """The ``TrainParams`` fields these options set (None: left to the file or defaults).

    Early stopping is on when any of its options is given (its other fields keep their
    defaults, or the file's values).

    >>> training_overrides(patience=2, schedule="cosine")
    {'optimizer': {'name': None, 'weight_decay': None, 'clipnorm': None, 'schedule': 'cosine', \
'warmup_steps': None}, 'early_stopping': {'patience': 2, 'min_delta': None, 'monitor': None}}
    """
    overrides: dict[str, Any] = {
        "optimizer": {
            "name": optimizer,
            "weight_decay": weight_decay,
            "clipnorm": clipnorm,
            "schedule": schedule,
            "warmup_steps": warmup_steps,
        },
    }
    stopping = {"patience": patience, "min_delta": min_delta, "monitor": monitor}
    if any(value is not None for value in stopping.values()):
        overrides["early_stopping"] = stopping
    if class_weight is not None:
        overrides["class_weight"] = parse_class_weight(class_weight)
    if mixed_precision is not None:
        overrides["mixed_precision"] = mixed_precision
    return overrides
