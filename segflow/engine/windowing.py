"""Fixed-length windows over a tabular series: the whole-array definition (and oracle).

The classic "LSTM with Keras" recipe turns a table of ``T`` rows into
``[samples, time_steps, features]`` windows. segflow's one definition, for ``time_steps`` N,
``inputs`` and ``horizon`` H:

- the *input row* ``t`` is row ``t``'s features, its label, or both concatenated
  (``features ‖ labels``), per ``inputs``;
- the window *ending at row t* holds input rows ``t-N+1 .. t`` and its target is the label of
  row ``t+H``;
- windows exist for ``N-1 <= t`` and ``t+H < T``: ``T-N+1-H`` of them, and a table needs at
  least ``N+H`` rows for one. Label inputs need ``H >= 1`` (a label cannot predict itself).

The recipe's article modes are special cases:

======================= === ========================================== ========== ==========
``inputs``              H   rows in ``X`` (predicting label ``u``)     first u    windows
======================= === ========================================== ========== ==========
``features``            0   features of rows ``u-N+1 .. u``            ``N-1``    ``T-N+1``
``labels``              1   labels of rows ``u-N .. u-1`` (shifted)    ``N``      ``T-N``
``features_and_labels`` 1   features ‖ labels of rows ``u-N .. u-1``   ``N``      ``T-N``
======================= === ========================================== ========== ==========

Targets:

- ``many_to_one``: ``y[n]`` is the label of row ``t+H`` — shape (W, K);
- ``many_to_many``: ``y[n, j]`` is what window position ``j`` (row ``r = t-N+1+j``) predicts,
  the label of row ``r+H``: ``labels[t-N+1+H .. t+H]``, shape (W, N, K); its last position is
  the many-to-one target.

:func:`model_rows` is the same definition row by row, what a streaming reader consumes: the
input rows (T, F') and the targets (T-H, K), target row ``t`` being the target of input row
``t``. :func:`make_windows` cuts a whole table (vectorised), :func:`iter_windows` a table given
in consecutive blocks; both are the oracle that :mod:`segflow.windowed` is tested against.

Labels given as (T,) are treated as (T, 1), so ``K`` is always explicit in the outputs.
``X`` has ``F`` (``features``), ``K`` (``labels``) or ``F + K`` (``features_and_labels``)
columns, with the dtype NumPy promotion gives when features and labels are concatenated.

Worked example: five rows, one feature, ``time_steps=2``.

>>> import numpy as np
>>> f = np.array([[0], [10], [20], [30], [40]]); lab = np.array([0, 1, 2, 3, 4])
>>> X, y = make_windows(f, lab, WindowConfig(time_steps=2))
>>> X[:, :, 0].tolist(), y[:, 0].tolist()      # rows (t-1, t) -> label t, t = 1..4
([[0, 10], [10, 20], [20, 30], [30, 40]], [1, 2, 3, 4])
>>> X, y = make_windows(f, lab, WindowConfig(time_steps=2, inputs="labels", horizon=1))
>>> X[:, :, 0].tolist(), y[:, 0].tolist()      # labels of rows (t-1, t) -> label t+1
([[0, 1], [1, 2], [2, 3]], [2, 3, 4])
>>> X, y = make_windows(f, lab, WindowConfig(time_steps=2, horizon=2))
>>> X[:, :, 0].tolist(), y[:, 0].tolist()      # features of rows (t-1, t) -> label t+2
([[0, 10], [10, 20]], [3, 4])
>>> cfg = WindowConfig(time_steps=2, inputs="features_and_labels", horizon=1,
...                    target="many_to_many")
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
from pydantic import BaseModel, ConfigDict, Field, model_validator

from segflow.errors import ConfigError

__all__ = ["Inputs", "WindowConfig", "iter_windows", "make_windows", "min_rows", "model_rows"]

#: What each input row holds: row t's features, its label, or both.
Inputs = Literal["features", "labels", "features_and_labels"]


class WindowConfig(BaseModel):
    """How windows are cut from a table.

    Attributes:
        time_steps: Rows per window N (``> 0``).
        inputs: What an input row holds (see the module docstring): ``features``, ``labels``
            or ``features_and_labels``.
        horizon: H (``>= 0``; ``>= 1`` with label inputs): the window ending at row ``t``
            predicts the label of row ``t+H``.
        target: ``many_to_one`` (one label per window) or ``many_to_many`` (one per row).

    >>> try:
    ...     WindowConfig(time_steps=3, inputs="labels", horizon=0)
    ... except ValueError as error:
    ...     print("argument `horizon`" in str(error))
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_steps: int = Field(..., gt=0, description="Rows per window.")
    inputs: Inputs = Field("features", description="What each input row holds.")
    horizon: int = Field(0, ge=0, description="Rows ahead of the window's last row predicted.")
    target: Literal["many_to_one", "many_to_many"] = Field(
        "many_to_one", description="One label per window, or one per window row."
    )

    @model_validator(mode="after")
    def _label_inputs_look_ahead(self) -> WindowConfig:
        if self.inputs != "features" and self.horizon < 1:
            raise ValueError(
                f"Received an invalid value for argument `horizon` with inputs={self.inputs!r}, "
                f"expected an integer >= 1 (a label cannot predict itself), got {self.horizon}."
            )
        return self


def min_rows(config: WindowConfig) -> int:
    """Fewest rows that make one window: ``time_steps + horizon``.

    >>> min_rows(WindowConfig(time_steps=4, inputs="labels", horizon=1))
    5
    """
    return config.time_steps + config.horizon


def model_rows(
    features: ArrayLike, labels: ArrayLike, config: WindowConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The input rows and their targets, row by row (what a streaming reader windows).

    Args:
        features: (T, F) array.
        labels: (T,) or (T, K) array, one label per row.
        config: Inputs and horizon (``time_steps`` is not used).

    Returns:
        ``(rows, targets)``: rows (T, F') per ``inputs``; targets (T-H, K), ``targets[t]``
        being the label of row ``t+H``, the target of input row ``t``. The last H input rows
        have no target (a forecast past the end of the labels).

    Raises:
        ConfigError: When the shapes disagree.

    >>> rows, targets = model_rows(np.zeros((4, 2)), np.arange(4), WindowConfig(time_steps=1,
    ...                            inputs="labels", horizon=1))
    >>> rows[:, 0].tolist(), targets[:, 0].tolist()
    ([0, 1, 2, 3], [1, 2, 3])
    """
    feats, labs = _check_table(features, labels, where="")
    return _source(feats, labs, config), labs[config.horizon :]


def make_windows(
    features: ArrayLike, labels: ArrayLike, config: WindowConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a whole table into windows (vectorised; no loop over rows).

    Args:
        features: (T, F) array.
        labels: (T,) or (T, K) array, one label per row.
        config: Window size, inputs, horizon and target.

    Returns:
        ``X`` (W, time_steps, F') and ``y`` (W, K) or (W, time_steps, K), as new contiguous
        arrays (W and F' as in the module docstring).

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
        config: Window size, inputs, horizon and target.

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
    steps, horizon = config.time_steps, config.horizon
    source = _source(feats, labs, config)
    # sliding_window_view puts the window axis last: (T - N + 1, F', N) -> (.., N, F').
    x = np.moveaxis(sliding_window_view(source, steps, axis=0), -1, 1)
    y = np.moveaxis(sliding_window_view(labs, steps, axis=0), -1, 1)
    # Window n holds rows n .. n+N-1 and predicts rows n+H .. n+N-1+H: the inputs drop the
    # last H windows (no label H rows ahead) and the targets the first H.
    x, y = x[: len(x) - horizon], y[horizon:]
    if config.target == "many_to_one":
        y = y[:, -1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _source(feats: np.ndarray, labs: np.ndarray, config: WindowConfig) -> np.ndarray:
    if config.inputs == "features":
        return feats
    if config.inputs == "labels":
        return labs
    return np.concatenate([feats, labs], axis=1)


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
        f"Received an invalid value for `time_steps`: inputs {config.inputs!r} with "
        f"time_steps={config.time_steps} and horizon={config.horizon} needs at least "
        f"{min_rows(config)} rows for one window, got a table of T={rows} rows."
    )
