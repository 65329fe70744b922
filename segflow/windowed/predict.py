"""Row predictions of a windowed model: row ``t`` holds the output on the window ending at t.

A sequence is read in blocks of whole chunks, in order, carrying the last ``N-1`` rows from
one block to the next, so memory is bounded by a block whatever the sequence's length. Rows
``t < N-1`` have no full window: their predictions are NaN (missing), never zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from segflow.engine.chunks import SequenceChunks, read_rows
from segflow.engine.engine import pipelined
from storage.validation import invalid_argument, require_positive_int

if TYPE_CHECKING:
    from segflow.windowed.engine import WindowEngine

__all__ = ["DEFAULT_BLOCK_BYTES", "window_predictions"]

#: Default bytes of input rows per block (rounded to whole chunks, at least one).
DEFAULT_BLOCK_BYTES = 16 * 2**20


def window_predictions(
    engine: WindowEngine,
    seq: SequenceChunks,
    *,
    start: int = 0,
    batch_size: int | None = None,
    block_rows: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, predictions)`` blocks covering rows ``[start, T)`` in order.

    Args:
        engine: The windowed engine (its model and ``time_steps`` N).
        seq: The sequence's input rows (``seq.frames``; labels are not read).
        start: First row to predict, e.g. a grown sequence's previous length; its windows
            reach back ``N-1`` rows before it.
        batch_size: Windows per model call (default: the engine's ``batch_size``).
        block_rows: Rows per block, rounded up to whole chunks (default: about
            :data:`DEFAULT_BLOCK_BYTES` of rows). Blocks after the first start on a chunk
            boundary.

    Yields:
        ``(first_row, rows)``: ``rows`` is (n, outputs) float32, row ``i`` the prediction of
        the window ending at row ``first_row + i`` (NaN where ``first_row + i < N-1``).

    Raises:
        ConfigError: On a bad ``start``, ``batch_size`` or ``block_rows``.
    """
    frames = seq.frames
    length, chunk, steps = frames.length, frames.chunk_length, engine.time_steps
    if not isinstance(start, int) or not 0 <= start <= length:
        raise invalid_argument("start", f"an integer in [0, {length}]", start)
    size = require_positive_int("batch_size", batch_size or engine.batch_size)
    rows = _block_rows(frames.row_shape, frames.dtype.itemsize, chunk, block_rows)
    blocks = []
    lo = start
    while lo < length:
        hi = min(length, (lo // rows + 1) * rows)
        blocks.append((lo, hi))
        lo = hi
    outputs = engine.config.outputs
    cache: dict[int, np.ndarray] = {}
    for lo, hi in blocks:
        out = np.full((hi - lo, outputs), np.nan, dtype=np.float32)
        first = max(lo, steps - 1)  # first row with a full window
        if first < hi:
            # Chunks of the previous block stay cached for the history rows; older ones go.
            for index in [i for i in cache if i < (first - steps + 1) // chunk]:
                del cache[index]
            block = read_rows(frames, first - steps + 1, hi, cache)
            out[first - lo :] = _predict_rows(engine, block, size)
        yield lo, out


def _predict_rows(engine: WindowEngine, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Predictions of every full window of ``rows``, ``batch_size`` windows a model call."""
    windows = np.moveaxis(sliding_window_view(rows, engine.time_steps, axis=0), -1, 1)

    def predict(lo: int) -> np.ndarray:
        return engine.predict_windows(np.ascontiguousarray(windows[lo : lo + batch_size]))

    # The next batch of windows is copied out while the model runs on this one.
    parts = range(0, len(windows), batch_size)
    return np.concatenate([result for _, result in pipelined(parts, predict)])


def _block_rows(
    row_shape: tuple[int, ...], itemsize: int, chunk: int, block_rows: int | None
) -> int:
    if block_rows is None:
        row_bytes = max(int(np.prod(row_shape)) * itemsize, 1)
        block_rows = DEFAULT_BLOCK_BYTES // row_bytes
    else:
        require_positive_int("block_rows", block_rows)
    return max(1, -(-block_rows // chunk)) * chunk
