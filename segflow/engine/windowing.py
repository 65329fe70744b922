"""Fixed-length windows over a tabular series, for a windowed (stateless) LSTM.

The classic "LSTM with Keras" recipe turns a table of ``T`` rows into
``[samples, time_steps, features]`` windows by shifting. For the window that predicts the
label of row ``t`` (``ts`` = ``time_steps``):

======================= ========================================== ========= ==========
mode                    rows in ``X``                              first t   windows N
======================= ========================================== ========= ==========
``features``            features of rows ``t-ts+1 .. t``           ``ts-1``  ``T-ts+1``
``labels``              labels of rows ``t-ts .. t-1``             ``ts``    ``T-ts``
``features_and_labels`` features ‖ labels of rows ``t-ts .. t-1``  ``ts``    ``T-ts``
======================= ========================================== ========= ==========

The shifted modes stop at row ``t-1``: row ``t``'s label is what is predicted, and a window
row keeps its features and label together, so row ``t`` cannot be included. Targets:

- ``many_to_one``: ``y[n]`` is the label of row ``t`` — shape (N, K);
- ``many_to_many``: ``y[n, j]`` is what window position ``j`` predicts — its own row's label
  in ``features`` mode, the next row's label in the shifted modes. Either way that is
  ``labels[t-ts+1 .. t]``, shape (N, ts, K), and its last position is the many-to-one target.

Labels given as (T,) are treated as (T, 1), so ``K`` is always explicit in the outputs.
``X`` has ``F`` (``features``), ``K`` (``labels``) or ``F + K`` (``features_and_labels``)
columns, with the dtype NumPy promotion gives when features and labels are concatenated.

Worked example: five rows, one feature, ``time_steps=2``.

>>> import numpy as np
>>> f = np.array([[0], [10], [20], [30], [40]]); lab = np.array([0, 1, 2, 3, 4])
>>> X, y = make_windows(f, lab, WindowConfig(time_steps=2, mode="features"))
>>> X[:, :, 0].tolist(), y[:, 0].tolist()      # rows (t-1, t) -> label t, t = 1..4
([[0, 10], [10, 20], [20, 30], [30, 40]], [1, 2, 3, 4])
>>> X, y = make_windows(f, lab, WindowConfig(time_steps=2, mode="labels"))
>>> X[:, :, 0].tolist(), y[:, 0].tolist()      # labels of rows (t-2, t-1) -> label t, t = 2..4
([[0, 1], [1, 2], [2, 3]], [2, 3, 4])
>>> cfg = WindowConfig(time_steps=2, mode="features_and_labels", target="many_to_many")
>>> X, y = make_windows(f, lab, cfg)
>>> X[0].tolist(), y[0, :, 0].tolist()         # rows 0, 1 as [feature, label] -> labels 1, 2
([[0, 0], [10, 1]], [1, 2])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field

from segflow.errors import ConfigError

__all__ = ["WindowConfig", "iter_windows", "make_windows", "min_rows"]


class WindowConfig(BaseModel):
    """How windows are cut from a table.

    Attributes:
        time_steps: Rows per window (``> 0``).
        mode: What a window holds (see the module docstring): ``features`` (rows up to and
            including the target row), ``labels`` or ``features_and_labels`` (the rows
            before the target row).
        target: ``many_to_one`` (one label per window) or ``many_to_many`` (one per row).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_steps: int = Field(..., gt=0, description="Rows per window.")
    mode: Literal["features", "labels", "features_and_labels"] = Field(
        "features", description="What each window holds."
    )
    target: Literal["many_to_one", "many_to_many"] = Field(
        "many_to_one", description="One label per window, or one per window row."
    )


def min_rows(config: WindowConfig) -> int:
    """Fewest rows that make one window: ``time_steps``, plus one in the shifted modes."""
    return config.time_steps + _shift(config)


def make_windows(
    features: ArrayLike, labels: ArrayLike, config: WindowConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a whole table into windows (vectorised; no loop over rows).

    Args:
        features: (T, F) array.
        labels: (T,) or (T, K) array, one label per row.
        config: Window size, mode and target.

    Returns:
        ``X`` (N, time_steps, F') and ``y`` (N, K) or (N, time_steps, K), as new contiguous
        arrays (N and F' as in the module docstring).

    Raises:
        ConfigError: When the shapes disagree, or the table is too short for one window.
    """
    feats, labs = _check_table(features, labels, where="")
    if len(feats) < min_rows(config):
        raise ConfigError(_too_short(config, len(feats)))
    return _windows(feats, labs, config)


def iter_windows(
    blocks: Iterable[tuple[ArrayLike, ArrayLike]], config: WindowConfig
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut a long table given in consecutive blocks, carrying rows across block boundaries.

    Each ``(features, labels)`` block continues the previous one. Only the last rows needed
    by the next window (``min_rows(config) - 1``) are kept between blocks, so memory is
    bounded by the largest block. Concatenating everything yielded gives exactly
    :func:`make_windows` of the concatenated table.

    Args:
        blocks: ``(features (Ti, F), labels (Ti,) or (Ti, K))`` pairs, in row order; blocks
            may have any number of rows, including zero.
        config: Window size, mode and target.

    Yields:
        ``(X, y)`` for the windows whose target row lies in each block (blocks that
        complete no window yield nothing).

    Raises:
        ConfigError: When a block's shapes disagree with itself or with earlier blocks, or,
            once the blocks are exhausted, when the whole table was too short for a window.
    """
    carry = min_rows(config) - 1
    tail: tuple[np.ndarray, np.ndarray] | None = None
    rows = 0
    for i, (block_features, block_labels) in enumerate(blocks):
        feats, labs = _check_table(block_features, block_labels, where=f"blocks[{i}] ")
        rows += len(labs)
        if tail is not None:
            _check_widths(tail, (feats, labs), where=f"blocks[{i}] ")
            feats, labs = np.concatenate([tail[0], feats]), np.concatenate([tail[1], labs])
        if len(feats) > carry:
            yield _windows(feats, labs, config)
        # Copies, so the carried rows do not keep the whole previous block alive.
        keep = slice(max(len(feats) - carry, 0), None)
        tail = (feats[keep].copy(), labs[keep].copy())
    if rows < min_rows(config):
        raise ConfigError(_too_short(config, rows))


def _windows(
    feats: np.ndarray, labs: np.ndarray, config: WindowConfig
) -> tuple[np.ndarray, np.ndarray]:
    steps, shift = config.time_steps, _shift(config)
    source = _source(feats, labs, config)
    # sliding_window_view puts the window axis last: (T - ts + 1, F', ts) -> (.., ts, F').
    x = np.moveaxis(sliding_window_view(source, steps, axis=0), -1, 1)
    y = np.moveaxis(sliding_window_view(labs, steps, axis=0), -1, 1)
    # Shifted modes: window n holds rows n .. n+ts-1 and predicts rows n+1 .. n+ts, so the
    # inputs drop the last window and the targets drop the first.
    x, y = x[: len(x) - shift], y[shift:]
    if config.target == "many_to_one":
        y = y[:, -1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _source(feats: np.ndarray, labs: np.ndarray, config: WindowConfig) -> np.ndarray:
    if config.mode == "features":
        return feats
    if config.mode == "labels":
        return labs
    return np.concatenate([feats, labs], axis=1)


def _shift(config: WindowConfig) -> int:
    return 0 if config.mode == "features" else 1


def _check_table(
    features: ArrayLike, labels: ArrayLike, *, where: str
) -> tuple[np.ndarray, np.ndarray]:
    feats, labs = np.asarray(features), np.asarray(labels)
    if feats.ndim != 2:
        raise ConfigError(
            f"Received an invalid value for {where}`features`: expected a 2-D (rows, features) "
            f"array, got shape {feats.shape}."
        )
    if labs.ndim not in (1, 2):
        raise ConfigError(
            f"Received an invalid value for {where}`labels`: expected a (rows,) or "
            f"(rows, label_dims) array, got shape {labs.shape}."
        )
    if len(labs) != len(feats):
        raise ConfigError(
            f"Received mismatched {where}`features` and `labels`: expected the same number of "
            f"rows, got {len(feats)} feature rows and {len(labs)} label rows."
        )
    return feats, labs[:, None] if labs.ndim == 1 else labs


def _check_widths(
    previous: tuple[np.ndarray, np.ndarray], current: tuple[np.ndarray, np.ndarray], *, where: str
) -> None:
    for name, before, now in zip(("features", "labels"), previous, current, strict=True):
        if before.shape[1:] != now.shape[1:]:
            raise ConfigError(
                f"Received an invalid value for {where}`{name}`: expected {before.shape[1]} "
                f"columns like the earlier blocks, got {now.shape[1]}."
            )


def _too_short(config: WindowConfig, rows: int) -> str:
    return (
        f"Received an invalid value for `time_steps`: mode {config.mode!r} with "
        f"time_steps={config.time_steps} needs at least {min_rows(config)} rows for one "
        f"window, got a table of T={rows} rows."
    )
