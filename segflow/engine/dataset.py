"""The schedule's batches as a ``tf.data.Dataset``: segflow's one input pipeline.

Training, evaluation and prediction (:meth:`StreamingEngine.stream
<segflow.engine.engine.StreamingEngine.stream>`) consume this dataset, and so can a user's own
Keras code. It is ``Dataset.range(start_step, num_steps)`` mapped in order
(one call at a time) to each step's batch, then prefetched: the batch of a
step is assembled by :class:`~segflow.engine.reader.StepReader` in one ``tf.numpy_function``
call, while reader threads read the chunks of the next steps (each chunk once) and the model
runs the current step.

Why not ``Dataset.from_generator``: measured on 2 cores it cost 3-4 ms of CPU per 1 MB batch,
and creating one switches glibc's ``malloc`` to trimming (``M_TRIM_THRESHOLD`` is set by
TensorFlow's generator op), which slows every large allocation of the process afterwards,
the model's included. A mapped ``numpy_function`` over step indices has neither cost.
Why not a graph-only reader (``tf.io.read_file`` + ``decode_raw``): stored chunks carry a
crc32c checksum TensorFlow cannot check, blosc chunks need a Python codec, and S3 chunks
come through fsspec; the Python per step is the batch assembly only (~1 ms for 32 lanes),
done in a ``tf.data`` thread, in parallel with the model.

TensorFlow is imported only when a dataset is built, so the reader and the chunk sources stay
usable without it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from segflow.engine.reader import StepReader

if TYPE_CHECKING:
    import tensorflow as tf

    from storage.sequences import SequenceRepository

__all__ = ["StepFeed", "make_dataset", "reader_dataset"]


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
    """Return the stateful segment dataset of stored sequences, in schedule order.

    ``lanes`` sequences stream side by side, ``segment_length`` frames per element; each
    element is a dict of fixed-shape tensors (``B = lanes``, ``L = segment_length``):

    - ``frames`` (B, L, *frame_shape) in the store's dtype, zeros where padded;
    - ``mask`` (B, L) bool, True on real frames;
    - ``reset`` (B,) bool, True where a lane begins a sequence (or is idle): zero that lane's
      state before the step;
    - ``ends`` (B,) bool, True where a lane carries its sequence's last frame;
    - ``labels`` (B, L, *label_shape) float32, only ``with_labels``; NaN where a target is
      missing (weigh it zero).

    Elements must be consumed in order by a stateful model with batch size B (as Keras
    states it: no shuffling, batches temporally ordered), resetting the flagged lanes first.
    The sequences are opened (and checked complete) here, not at the first element. The
    dataset's cardinality is the number of steps from ``start_step``, and its elements equal
    the suffix of a pass from step 0, so ``start_step`` resumes a run.

    Args:
        repo: The repository to read.
        ids: Sequence ids, in the order the schedule takes them.
        lanes: Number of lanes B.
        segment_length: Frames per step L.
        with_labels: Whether batches carry ``labels``.
        start_step: First step (a resume cursor).
        prefetch: Batches kept ready ahead of the consumer (or ``tf.data.AUTOTUNE``).
        readahead: Steps of chunks read ahead by the reader threads (see
            :meth:`StepReader.iter_batches`).
        workers: Reader threads (None: chosen by :meth:`StepReader.iter_batches`).

    Returns:
        The dataset.

    Raises:
        IncompleteSequenceError: If a sequence is not marked complete.
        ConfigError: On invalid arguments (see :class:`StepReader`).

    Example (a stateful Keras model of batch size ``lanes``; ``reset_lanes`` zeroes the state
    rows of the lanes flagged, see :mod:`segflow.engine.lanes`)::

        dataset = make_dataset(repo, ids, lanes=32, segment_length=64, with_labels=True)
        for batch in dataset:
            reset_lanes(model, batch["reset"])
            loss = model.train_on_batch(
                batch["frames"], tf.where(tf.math.is_nan(batch["labels"]), 0.0,
                batch["labels"]), sample_weight=tf.cast(batch["mask"], tf.float32))
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
    """Return the dataset of ``reader``'s batches from ``start_step`` (see :func:`make_dataset`).

    Raises:
        ConfigError: On a bad ``start_step``, ``readahead`` or ``workers`` (raised here, not
            inside ``tf.data``).

    >>> reader = StepReader.from_arrays([np.arange(5)], lanes=1, segment_length=3)
    >>> [batch["frames"].numpy().tolist() for batch in reader_dataset(reader)]
    [[[0, 1, 2]], [[3, 4, 0]]]
    """
    feed = StepFeed(reader, start_step=start_step, readahead=readahead, workers=workers)
    return feed.dataset(prefetch=prefetch)


class StepFeed:
    """Serves ``reader``'s batches by step index to a ``tf.data`` pipeline, reading ahead.

    Steps are asked for in order; a step other than the next one (a new pass over the
    dataset, or a resume) restarts the reading there. The reader threads stop when the last
    step is served, on :meth:`close`, or when the feed is garbage collected.

    Args:
        reader: The batches.
        start_step: First step of the datasets built from this feed.
        readahead: Steps of chunks read ahead (see :meth:`StepReader.iter_batches`).
        workers: Reader threads (see :meth:`StepReader.iter_batches`).

    Raises:
        ConfigError: On a bad ``start_step``, ``readahead`` or ``workers``.
    """

    def __init__(
        self,
        reader: StepReader,
        *,
        start_step: int = 0,
        readahead: int = 2,
        workers: int | None = None,
    ) -> None:
        # Bad arguments fail here rather than inside tf.data (iter_batches checks them when
        # called, and starts no thread before its first batch).
        _close_batches(
            {"batches": reader.iter_batches(start_step, readahead=readahead, workers=workers)}
        )
        self.reader = reader
        self.start_step = start_step
        self._readahead, self._workers = readahead, workers
        self._names = tuple(reader.batch_spec())
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"batches": None, "next": -1}
        # The generator owns reader threads: stop them when the feed goes away unclosed.
        weakref.finalize(self, _close_batches, self._state)

    def dataset(self, *, prefetch: int = 2) -> tf.data.Dataset:
        """Return the dataset of the batches from ``start_step``, ``prefetch`` kept ready."""
        import tensorflow as tf

        spec = self.reader.batch_spec()
        dtypes = [tf.as_dtype(spec[name][1]) for name in self._names]

        def element(index: tf.Tensor) -> dict[str, tf.Tensor]:
            arrays = tf.numpy_function(self.read, [index], dtypes, stateful=True)
            return {
                name: tf.ensure_shape(array, spec[name][0])
                for name, array in zip(self._names, arrays, strict=True)
            }

        steps = tf.data.Dataset.range(self.start_step, self.reader.num_steps)
        # No num_parallel_calls: one call at a time, in order (the reader's chunk cache
        # follows the schedule); the reader threads already read ahead in parallel.
        return steps.map(element).prefetch(prefetch)

    def read(self, index: Any) -> list[np.ndarray]:
        """Return the arrays of step ``index``'s batch, in :meth:`StepReader.batch_spec` order."""
        index = int(index)
        with self._lock:
            state = self._state
            if state["next"] != index:
                _close_batches(state)
                state["batches"] = self.reader.iter_batches(
                    index, readahead=self._readahead, workers=self._workers
                )
            batch = next(state["batches"])
            state["next"] = index + 1
            if state["next"] == self.reader.num_steps:
                _close_batches(state)  # the last step: stop the reader threads now
        return [batch[name] for name in self._names]

    def close(self) -> None:
        """Stop reading ahead (the next :meth:`read` starts again)."""
        with self._lock:
            _close_batches(self._state)

    def __enter__(self) -> StepFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_batches(state: dict[str, Any]) -> None:
    batches: Iterator[Any] | None = state["batches"]
    state.update(batches=None, next=-1)
    close = getattr(batches, "close", None)
    if close is not None:
        close()
