"""What a training run streams through its engine: lanes of whole sequences, or windows.

A recipe without ``time_steps`` trains the stateful model: a :class:`StreamFeed` runs the
lane schedule of a :class:`~segflow.engine.pipeline.StepReader` through a
:class:`~segflow.engine.engine.StreamingEngine`, one segment per step. With ``time_steps``
a :class:`WindowFeed` runs shuffled batches of windows (:mod:`segflow.windowed`) through a
:class:`~segflow.windowed.WindowEngine`. Both present the same face to the training loop
(:class:`TrainFeed`): optimizer steps of an epoch from a resume position, each with its
loss sums, and a validation pass; the loop's checkpoints, reports and TensorBoard scalars do
not depend on which one runs.

Both engines describe their shape to checkpoints as ``lanes`` and ``segment_length``: the
lanes and segment length of a stateful run, the batch size and time steps of a windowed one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from segflow.config import ModelConfig, Recipe, TrainParams
from segflow.engine.chunks import SequenceChunks, open_sequence
from segflow.engine.shaping import shape_sequence
from segflow.optimizers import make_optimizer
from storage.sequences import SequenceRepository

__all__ = [
    "StreamFeed",
    "TrainFeed",
    "WindowFeed",
    "build_feed",
    "epoch_order",
    "shaped_sequences",
]

T = TypeVar("T")

#: ``(step index in the epoch, frames or windows trained on, {"loss_sum", "metric_sum", "count"})``.
TrainedStep = tuple[int, int, dict[str, float]]


class TrainFeed(Protocol):
    """An engine and the data of its epochs, as the training loop drives them."""

    @property
    def engine(self) -> Any:
        """The engine trained (``model``, ``optimizer``, ``config``, ``checkpoint_objects``)."""

    @property
    def sequences(self) -> Sequence[SequenceChunks]:
        """The training sequences, shaped by the recipe (opened once, read lazily)."""

    def steps_in(self, epoch: int) -> int:
        """Optimizer steps in epoch ``epoch``."""

    def train(self, epoch: int, start: int) -> Iterator[TrainedStep]:
        """Run the optimizer steps of ``epoch`` from step ``start``, in order."""

    def validate(self) -> dict[str, float]:
        """Loss and metric over the validation sequences (empty without any)."""


def shaped_sequences(
    repo: SequenceRepository, ids: Sequence[str], recipe: Recipe
) -> list[SequenceChunks]:
    """The sequences ``ids`` as the recipe's input rows and targets (see
    :mod:`segflow.engine.shaping`), read lazily from ``repo``.

    Raises:
        IncompleteSequenceError, SequenceNotFoundError: As
            :func:`~segflow.engine.chunks.open_sequence`.
        ConfigError: A sequence without labels, or one the recipe cannot shape.
    """
    return [
        shape_sequence(open_sequence(repo, sequence_id, with_labels=True), recipe)
        for sequence_id in ids
    ]


def build_feed(
    repo: SequenceRepository,
    ids: Sequence[str],
    params: TrainParams,
    config: ModelConfig,
    validation: Sequence[str] = (),
) -> TrainFeed:
    """The feed of a training run: its engine (fresh weights) and readers.

    Args:
        repo: The store's sequences.
        ids: The sequences trained on, in run order.
        params: The run's parameters.
        config: The model.
        validation: The held-out sequences streamed after each epoch.

    Raises:
        ConfigError: On sequences the recipe cannot shape, or the model cannot take.
    """
    if params.recipe.windowed:
        return WindowFeed.build(repo, ids, validation, params, config)
    return StreamFeed.build(repo, ids, validation, params, config)


@dataclass
class StreamFeed:
    """The stateful model over lanes of whole sequences, one segment per optimizer step."""

    engine: Any
    reader: Any
    validation: Any = None
    sequences: Sequence[SequenceChunks] = ()
    params: TrainParams | None = None

    @classmethod
    def build(
        cls,
        repo: SequenceRepository,
        ids: Sequence[str],
        validation_ids: Sequence[str],
        params: TrainParams,
        config: ModelConfig,
    ) -> StreamFeed:
        """Readers over ``ids`` (and the validation ids) and a fresh engine."""
        from segflow.engine.engine import StreamingEngine

        sequences = shaped_sequences(repo, ids, params.recipe)
        reader = _lanes(sequences, params)
        # One label per frame: (B, L) and (B, L, 1) are the engine's default label shape.
        label_shape = None if reader.label_shape in ((), (1,)) else reader.label_shape
        total = params.epochs * reader.num_steps
        engine = StreamingEngine(
            config,
            lanes=params.stream.lanes,
            segment_length=params.stream.segment_length,
            optimizer=make_optimizer(params.optimizer, params.learning_rate, total),
            reset_every_segment=params.reset_every_segment,
            label_shape=label_shape,
            seed=params.seed,
        )
        check = None
        if validation_ids:
            check = _lanes(shaped_sequences(repo, validation_ids, params.recipe), params)
        return cls(engine, reader, check, sequences, params)

    def steps_in(self, epoch: int) -> int:
        """Steps of the epoch's lane schedule (it depends on the order sequences enter)."""
        return int(self._reader(epoch).num_steps)

    def train(self, epoch: int, start: int) -> Iterator[TrainedStep]:
        """Stream the epoch's schedule from step ``start``: the sequences enter the lanes in
        an order shuffled from the seed and the epoch (pure, so a resume finds it again)."""
        reader = self._reader(epoch)
        for step, sums in self.engine.stream(reader, "train", start_step=start):
            yield step.index, sum(slot.valid for slot in step.slots), sums

    def _reader(self, epoch: int) -> Any:
        if self.params is None or not self.params.shuffle or len(self.sequences) < 2:
            return self.reader
        return _lanes(epoch_order(self.sequences, self.params.seed, epoch), self.params)

    def validate(self) -> dict[str, float]:
        """Stream the validation sequences, leaving the training lanes' state as it was."""
        from segflow.engine.lanes import read_lane_state, write_lane_state

        if self.validation is None:
            return {}
        saved = read_lane_state(self.engine.model)
        totals = {"loss_sum": 0.0, "metric_sum": 0.0, "count": 0.0}
        try:
            for _, sums in self.engine.stream(self.validation, "evaluate"):
                for key, value in sums.items():
                    totals[key] += value
        finally:
            write_lane_state(self.engine.model, saved)
        return means(totals, self.engine.metric_name)


@dataclass
class WindowFeed:
    """The stateless model over shuffled batches of windows, one batch per optimizer step."""

    engine: Any
    reader: Any
    validation: Any = None

    @classmethod
    def build(
        cls,
        repo: SequenceRepository,
        ids: Sequence[str],
        validation_ids: Sequence[str],
        params: TrainParams,
        config: ModelConfig,
    ) -> WindowFeed:
        """Window readers over ``ids`` (shuffled) and the validation ids, and a fresh engine."""
        from segflow.windowed import WindowEngine, WindowReader

        recipe = params.recipe
        time_steps = recipe.time_steps
        assert time_steps is not None

        def reader(selected: Sequence[str], shuffle: bool) -> Any:
            return WindowReader(
                shaped_sequences(repo, selected, recipe),
                time_steps=time_steps,
                batch_size=recipe.batch_size,
                seed=params.seed,
                shuffle=shuffle,
            )

        train = reader(ids, shuffle=params.shuffle)
        label_shape = None if train.label_shape in ((), (1,)) else train.label_shape
        total = params.epochs * train.num_batches
        engine = WindowEngine(
            config,
            time_steps=time_steps,
            batch_size=recipe.batch_size,
            optimizer=make_optimizer(params.optimizer, params.learning_rate, total),
            label_shape=label_shape,
            seed=params.seed,
        )
        check = reader(validation_ids, shuffle=False) if validation_ids else None
        return cls(engine, train, check)

    @property
    def sequences(self) -> Sequence[SequenceChunks]:
        """The training sequences the window reader cuts."""
        return tuple(self.reader.sequences)

    def steps_in(self, epoch: int) -> int:
        """Batches of windows in an epoch (the same every epoch)."""
        return int(self.reader.num_batches)

    def train(self, epoch: int, start: int) -> Iterator[TrainedStep]:
        """Batches ``start ..`` of ``epoch``'s shuffled order, through the tf.data pipeline."""
        from segflow.windowed import window_dataset

        if start >= self.steps_in(epoch):
            return
        dataset = window_dataset(self.reader, epoch=epoch, start_batch=start)
        for index, batch in enumerate(dataset, start=start):
            sums = self.engine.train_step(*self.engine.step_inputs(batch))
            values = {key: float(value) for key, value in sums.items()}
            yield index, int(values["count"]), values

    def validate(self) -> dict[str, float]:
        """Every validation window once, in order, without updating the weights."""
        from segflow.windowed import window_dataset

        if self.validation is None:
            return {}
        return dict(self.engine.evaluate(window_dataset(self.validation)))


def means(totals: dict[str, float], metric: str) -> dict[str, float]:
    """``{"loss": ..., metric: ...}``: sums over the count of weighted predictions.

    >>> means({"loss_sum": 6.0, "metric_sum": 3.0, "count": 3.0}, "mae")
    {'loss': 2.0, 'mae': 1.0}
    """
    count = max(totals["count"], 1.0)
    return {"loss": totals["loss_sum"] / count, metric: totals["metric_sum"] / count}


def epoch_order(sequences: Sequence[T], seed: int, epoch: int) -> list[T]:
    """``sequences`` in the order they enter the lanes in ``epoch``: shuffled from the seed
    and the epoch, the same on every call.

    >>> epoch_order("abcd", 0, 1) == epoch_order("abcd", 0, 1) != epoch_order("abcd", 0, 2)
    True
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(sequences))
    return [sequences[i] for i in order]


def _lanes(sequences: Sequence[SequenceChunks], params: TrainParams) -> Any:
    from segflow.engine.pipeline import StepReader

    return StepReader.from_sources(
        sequences,
        lanes=params.stream.lanes,
        segment_length=params.stream.segment_length,
        with_labels=True,
    )
