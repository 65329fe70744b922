"""A sequence shaped by a :class:`~segflow.config.Recipe`: the model's input rows and targets.

The recipe's shifting is done on chunk sources, lazily, so nothing is copied or
materialised: :func:`shape_sequence` turns a stored sequence (frames, labels) into one whose
``frames`` are the model's *input rows* and whose ``labels`` are the *targets*, row ``t``'s
target being label ``t + horizon``:

================================= ===================================== ====================
``inputs``                        input row t                           target of row t
================================= ===================================== ====================
``features``                      frame t                               label t + H
``labels``                        label t (float32)                     label t + H, H >= 1
``features_and_labels``           frame t ‖ label t (float32)           label t + H, H >= 1
================================= ===================================== ====================

The targets are the labels seen from row H on (:class:`~segflow.engine.chunks.OffsetChunks`),
so they are H rows shorter than the inputs: the last H rows of a sequence have no target
(they take no loss), and their predictions are forecasts past the end of the labels.

>>> import numpy as np
>>> from segflow.config import Recipe
>>> frames = ArrayChunks(np.arange(5.0)[:, None] * 10, chunk_length=2)
>>> labels = ArrayChunks(np.arange(5.0), chunk_length=2)
>>> shaped = shape_sequence(
...     SequenceChunks("a", frames, labels), Recipe(inputs="features_and_labels", horizon=2)
... )
>>> read_rows(shaped.frames, 0, 3).tolist()
[[0.0, 0.0], [10.0, 1.0], [20.0, 2.0]]
>>> shaped.labels.length, read_rows(shaped.labels, 0, 3).tolist()
(3, [2.0, 3.0, 4.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segflow.config import Recipe
from segflow.engine.chunks import (  # ArrayChunks: used by the doctests
    ArrayChunks,  # noqa: F401
    ChunkSource,
    OffsetChunks,
    SequenceChunks,
    read_rows,
)
from segflow.errors import ConfigError

__all__ = ["ConcatChunks", "check_recipe_frames", "input_shape", "shape_sequence"]


class ConcatChunks:
    """Several sources of the same length side by side: row t is their rows t, flattened and
    concatenated, as float32.

    Chunks follow the first source's chunk length; the others are read by row range, so
    their chunkings need not agree.

    Args:
        parts: The sources (at least one), all of the same length, with rows of rank <= 1.

    Raises:
        ConfigError: On no sources, sources of different lengths, or rows of rank > 1.

    >>> both = ConcatChunks([ArrayChunks(np.ones((3, 2)), 2), ArrayChunks(np.zeros(3), 2)])
    >>> both.row_shape, both.read_chunk(1).tolist()
    ((3,), [[1.0, 1.0, 0.0]])
    """

    def __init__(self, parts: Sequence[ChunkSource]) -> None:
        if not parts:
            raise ConfigError("Received no sources to concatenate; expected at least one.")
        lengths = {part.length for part in parts}
        if len(lengths) > 1:
            raise ConfigError(
                f"Received sources of different lengths {sorted(lengths)} to concatenate; "
                "expected one row of each per row."
            )
        for part in parts:
            if len(part.row_shape) > 1:
                raise ConfigError(
                    f"Received rows of shape {part.row_shape} to concatenate; expected feature "
                    "vectors (rank 0 or 1)."
                )
        self.parts = tuple(parts)
        self.length = parts[0].length
        self.chunk_length = parts[0].chunk_length
        self.row_shape = (sum(int(np.prod(part.row_shape)) for part in parts),)
        self.dtype: np.dtype[Any] = np.dtype(np.float32)
        self.cheap_reads = all(part.cheap_reads for part in parts)

    def read_chunk(self, index: int) -> np.ndarray:
        """Return chunk ``index``: every source's rows of it, side by side, as float32."""
        start = index * self.chunk_length
        stop = min(start + self.chunk_length, self.length)
        columns = [
            read_rows(part, start, stop).reshape(stop - start, -1).astype(np.float32, copy=False)
            for part in self.parts
        ]
        return np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]


def input_shape(
    frame_shape: tuple[int, ...], label_shape: tuple[int, ...], inputs: str
) -> tuple[int, ...]:
    """Shape of one input row for frames and labels of the given shapes.

    >>> input_shape((4,), (), "features_and_labels"), input_shape((8, 8), (2,), "labels")
    ((5,), (2,))
    """
    label_width = int(np.prod(label_shape))
    if inputs == "features":
        return tuple(frame_shape)
    if inputs == "labels":
        return (label_width,)
    return (int(np.prod(frame_shape)) + label_width,)


def check_recipe_frames(recipe: Recipe, frame_shape: tuple[int, ...], where: str) -> None:
    """Refuse frames the recipe cannot join with labels (images, ``features_and_labels``).

    Raises:
        ConfigError: Naming ``where`` the frames come from.
    """
    if recipe.inputs == "features_and_labels" and len(frame_shape) > 1:
        raise ConfigError(
            f"Received an invalid value for argument `inputs`: 'features_and_labels' joins each "
            f"frame with its label, so it needs feature-vector frames, but {where} has frames "
            f"of shape {frame_shape}; use inputs='features' or 'labels'."
        )


def shape_sequence(seq: SequenceChunks, recipe: Recipe, *, targets: bool = True) -> SequenceChunks:
    """Return ``seq`` as the recipe's input rows (``frames``) and targets (``labels``).

    Args:
        seq: A sequence as stored: frames, and labels (one row per frame, or one row for a
            per-sequence label).
        recipe: What the model sees and predicts.
        targets: Whether the result carries targets (training and evaluation) or only inputs
            (prediction; label inputs still need the labels).

    Returns:
        A sequence with the same id: ``frames`` the input rows (as many as the frames),
        ``labels`` the targets (``horizon`` rows fewer; None when ``targets`` is False).

    Raises:
        ConfigError: On label inputs or a target without labels, a horizon or label inputs
            with a per-sequence label, or frames that cannot be joined with labels.
    """
    uses_labels = recipe.inputs != "features"
    if seq.labels is None and (targets or uses_labels):
        need = f"inputs={recipe.inputs!r} reads the labels" if uses_labels else "training does"
        raise ConfigError(
            f"Sequence {seq.id!r} has no labels, but {need}; ingest its labels with it "
            "(past labels are known for a growing recording), or use a model trained on "
            "features only."
        )
    if seq.per_sequence_labels and (uses_labels or recipe.horizon):
        raise ConfigError(
            f"Sequence {seq.id!r} has one label for the whole sequence; expected inputs="
            f"'features' and horizon=0 for it, got inputs={recipe.inputs!r} and horizon="
            f"{recipe.horizon} (shifting needs a label per frame)."
        )
    check_recipe_frames(recipe, seq.frames.row_shape, f"sequence {seq.id!r}")
    frames: ChunkSource = seq.frames
    if recipe.inputs == "labels":
        assert seq.labels is not None
        frames = ConcatChunks([seq.labels])
    elif recipe.inputs == "features_and_labels":
        assert seq.labels is not None
        frames = ConcatChunks([seq.frames, seq.labels])
    labels = None
    if targets:
        assert seq.labels is not None
        labels = seq.labels
        if recipe.horizon:
            labels = OffsetChunks(seq.labels, min(recipe.horizon, seq.labels.length))
    return SequenceChunks(seq.id, frames, labels, seq.per_sequence_labels)
