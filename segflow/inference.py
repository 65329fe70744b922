"""Inferring a model from stored sequences: input shape and dtype, encoder, task, head.

:func:`infer_model_config` looks at the frames and every label of the training sequences
and at the recipe (what the model sees), and picks the smallest sensible model: one LSTM
layer, an encoder that pools images down to at most :data:`MAX_ENCODED_FEATURES` values, and
the task the labels imply (binary, multiclass or regression).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segflow.config import ModelConfig, Recipe
from segflow.engine.shaping import check_recipe_frames, input_shape
from segflow.errors import ConfigError
from storage.sequences import SequenceRepository

__all__ = ["DEFAULT_UNITS", "check_recipe_labels", "class_names_of", "infer_model_config"]

#: Units of the LSTM of an inferred model.
DEFAULT_UNITS = 32
#: The avgpool encoder of an inferred image model pools until a frame is at most this long.
MAX_ENCODED_FEATURES = 256
#: Integer labels up to this many classes are taken as a multiclass task.
MAX_CLASSES = 256


def infer_model_config(
    repo: SequenceRepository,
    ids: Sequence[str],
    *,
    lstm_units: int = DEFAULT_UNITS,
    recipe: Recipe | None = None,
    normalize: bool = True,
    model_factory: str | None = None,
) -> ModelConfig:
    """Infer a model for sequences ``ids`` from their stored frames and labels.

    The model's inputs are what ``recipe`` feeds it (see :mod:`segflow.engine.shaping`):
    frames, labels (float32 vectors) or both joined; a windowed recipe (``time_steps``) gets
    one prediction per window (head ``many_to_one`` over the window). Float inputs are
    standardized inside the model when ``normalize`` (statistics set by training).

    - frames: shape and dtype of the first sequence; ``uint8`` stays ``uint8``, anything else
      is fed as ``float32``. Feature vectors use encoder ``none``; images ``avgpool``, pooled
      until a frame is at most :data:`MAX_ENCODED_FEATURES` values.
    - labels with class names (text labels, :mod:`segflow.sources.classnames`): ``binary``
      for two names (the second is 1), else ``multiclass`` with a class per name.
    - other labels (every sequence's, unlabelled rows left out): all integral and in {0, 1}
      → ``binary`` (one output per label
      column); one integral column in [0, :data:`MAX_CLASSES`) with a value above 1 →
      ``multiclass`` (max + 1 classes); otherwise ``regression``. Float labels holding whole
      numbers count as integral (CSV label columns are stored as float32).
    - head: ``many_to_one`` if every sequence has one label (``per_sequence``), else
      ``many_to_many``.
    - ``model_factory``: the data give the spec (frame shape and dtype, task, outputs, head);
      the factory builds the rest, so no encoder, units or normalization is chosen.

    Raises:
        ConfigError: If ``ids`` is empty, a sequence has no labels, frames cannot be
            encoded, or the recipe does not fit the labels (see :func:`check_recipe_labels`).
    """
    recipe = recipe or Recipe()
    if not ids:
        raise ConfigError("Received an empty list of sequence ids; expected at least one.")
    info = repo.info(ids[0])
    values, per_sequence = _label_values(repo, ids)
    check_recipe_labels(recipe, per_sequence)
    names = class_names_of(repo, ids)
    task, outputs = _task_for(values) if not names else _task_for_names(names)
    first_labels = repo.labels(ids[0])
    assert first_labels is not None  # _label_values checked every sequence has labels
    label_shape = tuple(int(n) for n in first_labels.shape[1:])
    check_recipe_frames(recipe, info.frame_shape, f"sequence {ids[0]!r}")
    frame_shape = input_shape(info.frame_shape, label_shape, recipe.inputs)
    features_only = recipe.inputs == "features"
    uint8 = features_only and np.dtype(info.dtype) == np.uint8
    head = "many_to_one" if per_sequence or recipe.windowed else "many_to_many"
    if model_factory is not None:
        return ModelConfig(
            frame_shape=frame_shape,
            input_dtype="uint8" if uint8 else "float32",
            head=head,
            task=task,
            outputs=outputs,
            model_factory=model_factory,
        )
    encoder, pool_size = _encoder_for(frame_shape)
    return ModelConfig(
        frame_shape=frame_shape,
        input_dtype="uint8" if uint8 else "float32",
        normalize=normalize and not uint8,
        encoder=encoder,
        pool_size=pool_size,
        lstm_units=[lstm_units],
        head=head,
        task=task,
        outputs=outputs,
    )


def check_recipe_labels(recipe: Recipe, per_sequence: bool) -> None:
    """Refuse a recipe that needs a label per frame for sequences labelled as a whole.

    Raises:
        ConfigError: Shifted inputs, a horizon or windows with per-sequence labels.

    >>> check_recipe_labels(Recipe(time_steps=4), per_sequence=True)
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received an invalid recipe for sequences with one label each: \
inputs, horizon and time_steps need a label per frame, got inputs='features', horizon=0, \
time_steps=4; use the defaults (features, 0, None) for per-sequence labels.
    """
    if per_sequence and (recipe.inputs != "features" or recipe.horizon or recipe.windowed):
        raise ConfigError(
            "Received an invalid recipe for sequences with one label each: inputs, horizon "
            f"and time_steps need a label per frame, got inputs={recipe.inputs!r}, "
            f"horizon={recipe.horizon}, time_steps={recipe.time_steps}; use the defaults "
            "(features, 0, None) for per-sequence labels."
        )


def _encoder_for(frame_shape: tuple[int, ...]) -> tuple[str, int]:
    if len(frame_shape) <= 1:
        return "none", 2
    if len(frame_shape) > 3:
        raise ConfigError(
            f"Cannot infer a model for frames of shape {frame_shape}: expected feature vectors "
            "or images (height, width[, channels]); pass a model config."
        )
    height, width = frame_shape[:2]
    channels = frame_shape[2] if len(frame_shape) == 3 else 1
    pool = 1
    while math.ceil(height / pool) * math.ceil(width / pool) * channels > MAX_ENCODED_FEATURES:
        pool += 1
        if pool >= max(height, width):
            break
    return "avgpool", pool


def _label_values(repo: SequenceRepository, ids: Sequence[str]) -> tuple[np.ndarray, bool]:
    """Every sequence's labels as (rows, columns) float64, and whether all are per sequence."""
    chunks, kinds = [], set()
    for sequence_id in ids:
        array = repo.labels(sequence_id)
        if array is None:
            raise ConfigError(
                f"Sequence {sequence_id!r} in store {repo.store.url!r} has no labels; training "
                "needs labels for every sequence (ingest them with the sequence)."
            )
        meta = repo.meta(sequence_id)
        rows = 1 if meta.label_kind == "per_sequence" else meta.length
        kinds.add(meta.label_kind)
        values = np.asarray(array[:rows], dtype=np.float64)
        chunks.append(values.reshape(len(values), -1))
    return np.concatenate(chunks), kinds == {"per_sequence"}


def class_names_of(repo: SequenceRepository, ids: Sequence[str]) -> tuple[str, ...]:
    """The class names the sequences' text labels share (empty for numeric labels).

    Raises:
        ConfigError: If two sequences name their classes differently (their indices would
            mean different classes): ingest them with one list of classes (``--classes``).
    """
    seen: dict[tuple[str, ...], str] = {}
    for sequence_id in ids:
        seen.setdefault(repo.meta(sequence_id).class_names, sequence_id)
    if len(seen) > 1:
        (first, a), (second, b) = list(seen.items())[:2]
        raise ConfigError(
            f"Sequences {a!r} and {b!r} name their label classes differently ({list(first)} "
            f"and {list(second)}), expected one list of classes for training; re-ingest them "
            f"with --classes {','.join(sorted(set(first) | set(second)))} (SourceConfig."
            "class_names)."
        )
    return next(iter(seen), ())


def _task_for_names(names: tuple[str, ...]) -> tuple[str, int]:
    return ("binary", 1) if len(names) <= 2 else ("multiclass", len(names))


def _task_for(values: np.ndarray) -> tuple[str, int]:
    columns = values.shape[1]
    values = values[np.isfinite(values).all(axis=1)]  # unlabelled rows tell nothing
    if values.size and np.isfinite(values).all() and np.array_equal(values, np.round(values)):
        low, high = values.min(), values.max()
        if low >= 0 and high <= 1:
            return "binary", columns
        if low >= 0 and columns == 1 and high < MAX_CLASSES:
            return "multiclass", int(high) + 1
    return "regression", columns
