"""The schedule's batches as a ``tf.data.Dataset``: the TensorFlow end of the input pipeline.

TensorFlow is imported only when a dataset is built, so the reader and the chunk sources stay
usable without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from segflow.engine.reader import StepReader

if TYPE_CHECKING:
    import tensorflow as tf

    from storage.sequences import SequenceRepository

__all__ = ["make_dataset", "reader_dataset"]


def make_dataset(
    repo: SequenceRepository,
    ids: Sequence[str],
    *,
    lanes: int,
    segment_length: int,
    with_labels: bool,
    start_step: int = 0,
    prefetch: int = 2,
    readahead: int = 2,
    workers: int | None = None,
) -> tf.data.Dataset:
    """Return a dataset of the schedule's batches, read from ``repo``, in schedule order.

    The sequences are opened (and checked complete) here, not at the first batch. Every
    element has the fixed shapes of :meth:`StepReader.batch_spec`, so a step function traces
    once; the dataset's cardinality is the number of steps from ``start_step``.

    Args:
        repo: The repository to read.
        ids: Sequence ids, in the order the schedule takes them.
        lanes: Number of lanes B.
        segment_length: Frames per step L.
        with_labels: Whether batches carry ``labels``.
        start_step: First step (a resume cursor).
        prefetch: Batches ``tf.data`` keeps ready ahead of the consumer (or
            ``tf.data.AUTOTUNE``).
        readahead: Steps of chunks read ahead by the reader threads (see
            :meth:`StepReader.iter_batches`).
        workers: Reader threads (None: chosen by :meth:`StepReader.iter_batches`).

    Raises:
        IncompleteSequenceError: If a sequence is not marked complete.
        ConfigError: On invalid arguments (see :class:`StepReader`).
    """
    reader = StepReader(
        repo, ids, lanes=lanes, segment_length=segment_length, with_labels=with_labels
    )
    return reader_dataset(
        reader, start_step=start_step, prefetch=prefetch, readahead=readahead, workers=workers
    )


def reader_dataset(
    reader: StepReader,
    *,
    start_step: int = 0,
    prefetch: int = 2,
    readahead: int = 2,
    workers: int | None = None,
) -> tf.data.Dataset:
    """Return a dataset of ``reader``'s batches from ``start_step`` (see :func:`make_dataset`)."""
    import tensorflow as tf

    reader.steps(start_step)  # a bad start_step fails here rather than inside tf.data
    signature = {
        name: tf.TensorSpec(shape, tf.as_dtype(dtype), name=name)
        for name, (shape, dtype) in reader.batch_spec().items()
    }
    dataset = tf.data.Dataset.from_generator(
        lambda: reader.iter_batches(start_step, readahead=readahead, workers=workers),
        output_signature=signature,
    )
    remaining = reader.num_steps - start_step
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(remaining))
    return dataset.prefetch(prefetch)
