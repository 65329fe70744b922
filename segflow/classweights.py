"""Class weights of a training run: ``TrainParams.class_weight`` made into one weight per class.

``balanced`` weighs each class by ``n_rows / (n_classes * rows_of_class)`` over the labels the
loss sees (scikit-learn's ``compute_class_weight``): for ``many_to_one`` the label at each
training sequence's end, for ``many_to_many`` (and windows) every labelled frame. The labels
are counted in one streaming pass, a chunk at a time, like the standardization statistics;
unlabelled rows (NaN) are left out. A dict gives weights by class index (classes it leaves
out weigh 1, as in Keras' ``class_weight``). The weights travel in
``ModelConfig.class_weights``, where :func:`segflow.engine.losses.elementwise` applies them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from segflow.engine.chunks import SequenceChunks, read_rows
from segflow.errors import ConfigError
from segflow.modelconfig import ModelConfig

__all__ = ["ClassWeightSpec", "class_counts", "class_weights", "number_of_classes"]

#: What a run asks for: ``"balanced"``, weights by class index, or None (all alike).
ClassWeightSpec = Literal["balanced"] | Mapping[int, float] | None


def number_of_classes(config: ModelConfig) -> int:
    """Classes of the model's head; refuses heads without classes.

    >>> number_of_classes(ModelConfig(frame_shape=(2,), task="binary"))
    2

    Raises:
        ConfigError: For a regression head, or several binary labels.
    """
    if config.task == "multiclass":
        return config.outputs
    if config.task == "binary" and config.outputs == 1:
        return 2
    raise ConfigError(
        f"Received `class_weight` for a {config.task} head with {config.outputs} outputs, "
        "expected a multiclass head or one binary label (class weights weigh classes)"
    )


def class_counts(sequences: Iterable[SequenceChunks], config: ModelConfig) -> dict[int, float]:
    """Labelled rows per class that the loss of ``config``'s head sees, in one pass.

    >>> from segflow.engine.chunks import ArrayChunks
    >>> frames = ArrayChunks(np.zeros((5, 1)), chunk_length=2)
    >>> labels = ArrayChunks(np.array([0.0, 2.0, np.nan, 2.0, 1.0]), chunk_length=2)
    >>> config = ModelConfig(frame_shape=(1,), task="multiclass", outputs=3)
    >>> class_counts([SequenceChunks("a", frames, labels)], config)
    {0: 1.0, 1: 1.0, 2: 2.0}
    """
    counts: Counter[int] = Counter()
    for sequence in sequences:
        source = sequence.labels
        if source is None or source.length == 0:
            continue
        if config.head == "many_to_one":
            counts.update(_classes(read_rows(source, source.length - 1, source.length), config))
            continue
        for index in range(-(-source.length // source.chunk_length)):
            counts.update(_classes(source.read_chunk(index), config))
    return {key: float(counts[key]) for key in sorted(counts)}


def _classes(rows: np.ndarray, config: ModelConfig) -> list[int]:
    """The class of each labelled row (class index, one-hot, or a 0/1 binary label)."""
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    known = np.isfinite(values).all(axis=1)
    values = values[known]
    if config.task == "multiclass" and values.shape[1] > 1:  # one-hot
        return np.argmax(values, axis=1).tolist()
    if config.task == "binary":
        return (values[:, 0] > 0.5).astype(int).tolist()
    return np.rint(values[:, 0]).astype(int).tolist()


def class_weights(
    spec: ClassWeightSpec, config: ModelConfig, counts: Mapping[int, float] | None = None
) -> tuple[float, ...] | None:
    """One loss weight per class of ``config``'s head, from what the run asked for.

    Args:
        spec: ``"balanced"``, weights by class index, or None.
        config: The model (its task and classes).
        counts: Labelled rows per class (:func:`class_counts`); needed for ``balanced``.

    Raises:
        ConfigError: For a head without classes, or classes the head does not have.

    >>> config = ModelConfig(frame_shape=(2,), task="multiclass", outputs=3)
    >>> class_weights("balanced", config, {0: 8.0, 1: 2.0})
    (0.625, 2.5, 1.0)
    >>> class_weights({2: 4.0}, config)
    (1.0, 1.0, 4.0)
    """
    if spec is None:
        return None
    n = number_of_classes(config)
    given = dict(counts or {}) if spec == "balanced" else dict(spec)
    unknown = sorted(key for key in given if not 0 <= int(key) < n)
    if unknown:
        what = "the training labels hold" if spec == "balanced" else "`class_weight` names"
        raise ConfigError(
            f"Received class_weight={spec!r} but {what} classes {unknown}, expected classes "
            f"0..{n - 1} of the {config.task} head"
        )
    if spec == "balanced":
        given = _balanced({int(k): v for k, v in given.items() if v > 0})
    return tuple(float(given.get(index, 1.0)) for index in range(n))


def _balanced(counts: dict[int, float]) -> dict[int, float]:
    """scikit-learn's balanced weights of the classes seen (a class never seen weighs 1)."""
    if not counts:
        return {}
    present = np.array(sorted(counts))
    rows = np.array([counts[key] for key in present])
    weights = compute_class_weight("balanced", classes=present, y=present, sample_weight=rows)
    return dict(zip(present.tolist(), weights.tolist(), strict=True))
