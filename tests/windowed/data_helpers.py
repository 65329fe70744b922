"""Test helper: realistic generated series, shaped into sequences as the recipe shapes them."""

from __future__ import annotations

import numpy as np

from segflow.engine.chunks import ArrayChunks, SequenceChunks
from segflow.engine.windowing import WindowConfig, model_rows

#: Every (inputs, horizon) of the recipes: the article's modes are (features, 0) and the
#: shifted ones with H=1; H=3 looks further ahead.
RECIPE_MODES = [
    ("features", 0),
    ("features", 1),
    ("features", 3),
    ("labels", 1),
    ("labels", 3),
    ("features_and_labels", 1),
    ("features_and_labels", 3),
]


def realistic_table(rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A weather-like table: seasonal, trending, noisy columns on very different scales.

    Returns float32 features (rows, features) and a label (rows,) that depends on the recent
    past of two of them (so it is learnable from windows), all NaN-free.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.float64)[:, None]
    period = rng.uniform(20, 60, size=features)
    scale = 10.0 ** rng.uniform(-2, 3, size=features)  # 0.01 .. 1000
    offset = rng.normal(0, 5, size=features) * scale
    walk = np.cumsum(rng.normal(0, 0.05, size=(rows, features)), axis=0)
    x = (np.sin(2 * np.pi * t / period) + walk + rng.normal(0, 0.3, (rows, features))) * scale
    x = (x + offset).astype(np.float32)
    label = np.sin(2 * np.pi * t[:, 0] / period[0]) + 0.1 * rng.normal(size=rows)
    return x, label.astype(np.float32)


def shaped(
    features: np.ndarray, labels: np.ndarray, config: WindowConfig, chunk: int, sid: str = "s"
) -> SequenceChunks:
    """The sequence the recipe hands the window reader: input rows and their targets."""
    rows, targets = model_rows(features, labels, config)
    # Chunk lengths of frames and labels differ on purpose: the reader reads each its own way.
    return SequenceChunks(
        sid, ArrayChunks(np.ascontiguousarray(rows), chunk), ArrayChunks(targets, chunk + 3)
    )


class CountingChunks:
    """A chunk source that counts the reads of each chunk (to check reads stay chunk-sized)."""

    def __init__(self, base: ArrayChunks) -> None:
        self.base = base
        self.length = base.length
        self.chunk_length = base.chunk_length
        self.row_shape = base.row_shape
        self.dtype = base.dtype
        self.cheap_reads = True
        self.reads: dict[int, int] = {}

    def read_chunk(self, index: int) -> np.ndarray:
        self.reads[index] = self.reads.get(index, 0) + 1
        return self.base.read_chunk(index)
