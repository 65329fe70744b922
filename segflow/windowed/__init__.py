"""Windowed (stateless) training and prediction: the article's model on windows of N rows.

The window ending at row ``t`` of a sequence holds its input rows ``t-N+1 .. t`` and is
trained on target row ``t`` (see :mod:`segflow.engine.windowing` for how inputs and targets
come from features, labels and a horizon). Windows are cut on the fly from chunked sequences;
nothing N times the data is ever stored.

- :mod:`~segflow.windowed.plan`: the pure, seeded epoch order (which windows in which batch);
- :mod:`~segflow.windowed.reader`: :class:`WindowReader`, batches as NumPy arrays;
- :mod:`~segflow.windowed.dataset`: the same batches as a ``tf.data.Dataset``
  (:func:`window_dataset`; :func:`window_training_dataset` for users' ``model.fit``);
- :mod:`~segflow.windowed.engine`: :class:`WindowEngine`, the stateless model's steps;
- :mod:`~segflow.windowed.predict`: :func:`window_predictions`, row predictions.

TensorFlow is imported by the dataset and engine modules only, so importing this package
for the plan or the reader alone stays light: the names below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from segflow.windowed.plan import Block, Pool, WindowPlan, plan_windows
from segflow.windowed.reader import DEFAULT_POOL_BYTES, PoolRows, WindowReader

if TYPE_CHECKING:
    from segflow.windowed.dataset import window_dataset, window_training_dataset
    from segflow.windowed.engine import WindowEngine
    from segflow.windowed.predict import window_predictions

__all__ = [
    "DEFAULT_POOL_BYTES",
    "Block",
    "Pool",
    "PoolRows",
    "WindowEngine",
    "WindowPlan",
    "WindowReader",
    "plan_windows",
    "window_dataset",
    "window_predictions",
    "window_training_dataset",
]

_LAZY = {
    "window_dataset": "segflow.windowed.dataset",
    "window_training_dataset": "segflow.windowed.dataset",
    "WindowEngine": "segflow.windowed.engine",
    "window_predictions": "segflow.windowed.predict",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
