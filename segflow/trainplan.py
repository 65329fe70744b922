"""Planning a training run: what it trains on, with which model, and whether it may resume.

:func:`plan_run` selects and splits the sequences and infers the model of a new run, or
reads back what a checkpoint recorded (refusing one whose recipe or data changed since);
:func:`warm_start` loads the model a run continues; :func:`segment_for` picks the segment
length from the data when none was given, and :func:`truncation_note` says how far the
gradient reaches with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from segflow.checkpoint import CheckpointManager, Cursor
from segflow.classweights import class_counts, class_weights, number_of_classes
from segflow.config import ModelConfig, Recipe, TrainParams
from segflow.errors import ConfigError
from segflow.feeds import shaped_sequences
from segflow.inference import infer_model_config
from segflow.registry import LoadedModel, load_model
from segflow.selection import check_no_overlap, select_sequences, split_validation
from storage.sequences import SequenceRepository

__all__ = [
    "ONE_SEGMENT_CAP",
    "SEGMENT_BYTES",
    "check_same_data",
    "check_training_cursor",
    "class_weight_record",
    "plan_run",
    "segment_for",
    "sequence_lengths",
    "truncation_note",
    "warm_start",
    "with_class_weights",
]


#: Many-to-one sequences up to this many frames train in one segment when the segment length
#: is not given: their loss's gradient then reaches every frame.
ONE_SEGMENT_CAP = 256
#: ... as long as one step's frames stay under this many bytes.
SEGMENT_BYTES = 256 * 2**20


def segment_for(
    params: TrainParams, config: ModelConfig, repo: SequenceRepository, ids: Sequence[str]
) -> TrainParams:
    """The run's params with the segment length chosen from the data when none was given.

    Many-to-one training is truncated BPTT: the loss at a sequence's end reaches back only
    through its last segment. Unless the user set ``stream.segment_length``, a many-to-one
    run takes segments long enough for its longest sequence, up to :data:`ONE_SEGMENT_CAP`
    frames and :data:`SEGMENT_BYTES` per step.
    """
    if (
        config.head != "many_to_one"
        or params.recipe.windowed
        or "segment_length" in params.stream.model_fields_set
    ):
        return params
    frame_bytes = math.prod(config.frame_shape) * (1 if config.input_dtype == "uint8" else 4)
    by_bytes = max(1, SEGMENT_BYTES // max(frame_bytes * params.stream.lanes, 1))
    longest = max(sequence_lengths(repo, ids), default=1)
    segment = max(1, min(longest, ONE_SEGMENT_CAP, by_bytes))
    stream = params.stream.model_copy(update={"segment_length": segment})
    return params.model_copy(update={"stream": stream})


def truncation_note(head: str, lengths: Sequence[int], segment: int, windowed: bool) -> str:
    """How far the training gradient reaches, in words (the report's ``truncation``).

    >>> truncation_note("many_to_one", [10, 300, 50], 64, False)
    'many_to_one over segments of 64 frames: 1 of 3 sequences are longer, so the loss at \
their end reaches back only 44..44 frames (the rest of each is seen but not trained through)'
    >>> truncation_note("many_to_one", [10, 50], 64, False)
    'many_to_one over segments of 64 frames: every sequence fits one segment'
    """
    if windowed:
        return f"windows of {segment} rows: the gradient reaches the whole window"
    if head == "many_to_many":
        return (
            f"many_to_many over segments of {segment} frames (truncated BPTT): a frame's loss "
            "reaches back to the start of its segment; the state carries everything older"
        )
    longer = [n for n in lengths if n > segment]
    if not longer:
        return f"many_to_one over segments of {segment} frames: every sequence fits one segment"
    reach = sorted({(n - 1) % segment + 1 for n in longer})
    return (
        f"many_to_one over segments of {segment} frames: {len(longer)} of {len(lengths)} "
        f"sequences are longer, so the loss at their end reaches back only "
        f"{reach[0]}..{reach[-1]} frames (the rest of each is seen but not trained through)"
    )


def warm_start(store: Any, params: TrainParams) -> LoadedModel:
    """The exported model a warm-started run begins from, checked against the run's params.

    Raises:
        CheckpointError: If there is no such model.
        ConfigError: If the run names another model or recipe than the one it continues.
    """
    assert params.init_from is not None
    start = load_model(store, params.init_from)
    if params.model is not None and params.model.config_hash() != start.config.config_hash():
        raise ConfigError(
            f"Received `model` and init_from={params.init_from!r} describing different models "
            f"(config hash {params.model.config_hash()[:12]} vs {start.config.config_hash()[:12]});"
            " leave `model` out to continue the given model as it is."
        )
    if params.recipe != Recipe() and not params.recipe.trains_like(start.recipe):
        raise ConfigError(
            f"Received recipe {params.recipe.model_dump()} but model {params.init_from!r} was "
            f"trained with {start.recipe.model_dump()}; a warm start keeps the model's recipe."
        )
    return start


def plan_run(
    repo: SequenceRepository, manager: CheckpointManager, latest: str | None, params: TrainParams
) -> tuple[list[str], list[str], ModelConfig, Cursor | None]:
    """The run's training and validation ids, its model config, and the latest checkpoint's
    cursor if there is one.

    A new run selects and infers; a resumed run keeps what its checkpoint recorded.
    """
    if latest is None:
        check_no_overlap(params.selection.ids, params.validation_ids)
        ids, held = _selected(repo, params)
        config = params.model or infer_model_config(
            repo,
            ids,
            recipe=params.recipe,
            normalize=params.normalize,
            model_factory=params.model_factory,
        )
        return ids, held, with_class_weights(repo, ids, params, config), None
    saved = manager.read_cursor(latest)
    check_training_cursor(saved, latest, manager)
    recorded = saved.extra.get("class_weight")
    if recorded != class_weight_record(params.class_weight):
        raise ConfigError(
            f"Received class_weight={params.class_weight!r}, but run {manager.run_key!r} in "
            f"store {manager.store.url!r} was checkpointed ({latest}) with {recorded!r}; "
            "resume with the same class weights, or train under another model tag."
        )
    where = f"{manager.run_key!r} in store {manager.store.url!r}"
    if params.on_changed_data == "restart_epoch":
        saved = _restarted_if_changed(repo, saved, latest, where, params)
    else:
        check_same_data(repo, saved, latest, where)
    trained = Recipe.from_record(saved.extra)
    if not trained.trains_like(params.recipe):
        raise ConfigError(
            f"Recipe mismatch: run {manager.run_key!r} in store {manager.store.url!r} was "
            f"checkpointed ({latest}) with recipe {trained.model_dump()}, got "
            f"{params.recipe.model_dump()}; use another model tag or delete those checkpoints."
        )
    config = manager.read_config(latest)
    if params.model is not None and params.model.config_hash() != config.config_hash():
        raise ConfigError(
            f"Model config mismatch: the given model has config hash "
            f"{params.model.config_hash()}, but run {manager.run_key!r} in store "
            f"{manager.store.url!r} was checkpointed ({latest}) with config hash "
            f"{config.config_hash()}; use another model tag or delete those checkpoints."
        )
    return list(saved.ids), list(saved.extra.get("validation", [])), config, saved


def with_class_weights(
    repo: SequenceRepository, ids: Sequence[str], params: TrainParams, config: ModelConfig
) -> ModelConfig:
    """``config`` with the class weights ``params.class_weight`` asks for (None clears them).

    ``balanced`` counts the classes of the training sequences' labels in one pass (see
    :mod:`segflow.classweights`).

    Raises:
        ConfigError: For a head without classes, or classes the head does not have.
    """
    if params.class_weight is None:
        return config.model_copy(update={"class_weights": None})
    counts = None
    if params.class_weight == "balanced":
        number_of_classes(config)  # a regression head is refused before any label is read
        counts = class_counts(shaped_sequences(repo, ids, params.recipe), config)
    weights = class_weights(params.class_weight, config, counts)
    return config.model_copy(update={"class_weights": weights})


def class_weight_record(spec: str | dict[int, float] | None) -> str | dict[str, float] | None:
    """``TrainParams.class_weight`` as a checkpoint records it (JSON: keys as text).

    >>> class_weight_record({1: 5.0}), class_weight_record("balanced")
    ({'1': 5.0}, 'balanced')
    """
    if isinstance(spec, dict):
        return {str(key): float(value) for key, value in sorted(spec.items())}
    return spec


def sequence_lengths(repo: SequenceRepository, ids: Sequence[str]) -> list[int]:
    return [repo.meta(sequence_id).length for sequence_id in ids]


def check_same_data(repo: SequenceRepository, saved: Cursor, name: str, where: str) -> None:
    """Refuse to resume over training sequences that changed since the checkpoint: the
    schedule (and the windows) would silently differ from the one the cursor points into."""
    change = data_change(repo, saved)
    if change is not None:
        raise ConfigError(
            f"Cannot resume run {where}: {change} since checkpoint {name!r}; the epoch's "
            "schedule would differ. Restore it, resume with on_changed_data='restart_epoch' "
            "(--restart-epoch-on-change), or train under another model tag."
        )


def data_change(repo: SequenceRepository, saved: Cursor) -> str | None:
    """How the training sequences changed since ``saved`` was written, or None."""
    before = saved.extra.get("lengths")
    if before is None:
        return None  # checkpoints from before lengths were recorded
    for sequence_id, old in zip(saved.ids, before, strict=True):
        if not repo.exists(sequence_id):
            return f"training sequence {sequence_id!r} is gone"
        now = repo.meta(sequence_id).length
        if now != old:
            return f"training sequence {sequence_id!r} has {now} frames, {old} before"
    return None


def _selected(repo: SequenceRepository, params: TrainParams) -> tuple[list[str], list[str]]:
    """The training and validation ids ``params`` select in ``repo`` now."""
    return split_validation(
        repo,
        select_sequences(repo, params.selection),
        ids=params.validation_ids,
        pattern=params.validation_pattern,
        fraction=params.validation_fraction,
        seed=params.seed,
    )


#: The cursor's mark of an epoch restarted over changed data (the reason), read by training.
RESTARTED = "restarted_epoch"


def _restarted_if_changed(
    repo: SequenceRepository, saved: Cursor, name: str, where: str, params: TrainParams
) -> Cursor:
    """``saved``, or when its data changed (or new sequences match the selection) a cursor at
    the start of its interrupted epoch over the sequences as they are now."""
    ids, held = _selected(repo, params)
    change = data_change(repo, saved)
    if change is None and list(saved.ids) == list(ids):
        return saved
    reason = change or f"the selection now gives {len(ids)} sequences, {len(saved.ids)} before"
    extra = {
        **saved.extra,
        "totals": {"loss_sum": 0.0, "metric_sum": 0.0, "count": 0.0},
        "validation": list(held),
        "lengths": sequence_lengths(repo, ids),
        RESTARTED: f"epoch {saved.epoch + 1} restarted at checkpoint {name!r} of {where}: {reason}",
    }
    return replace(saved, step=0, ids=tuple(ids), extra=extra)


def check_training_cursor(cursor: Cursor, name: str, manager: CheckpointManager) -> None:
    missing = {"history", "totals", "frames", "steps"} - set(cursor.extra)
    if cursor.kind != "train" or missing:
        raise ConfigError(
            f"Checkpoint {name!r} of run {manager.run_key!r} in store {manager.store.url!r} is "
            f"not a training checkpoint (kind {cursor.kind!r}, missing {sorted(missing)}); "
            "use another model tag or checkpoint store."
        )
