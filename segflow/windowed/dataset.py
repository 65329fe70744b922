"""Windows as a ``tf.data.Dataset``: what windowed training feeds, and users' ``model.fit``.

Python reads each *pool* of rows once (:meth:`WindowReader.iter_pools`: one mapped
``numpy_function`` call per pool, thousands of windows); the graph then cuts every batch
out of the pool with ``tf.gather`` over index ranges, in TensorFlow's threads. No Python runs
per window or per batch, and a window is only ever materialised inside its batch. Elements
are Keras' form::

    ({"frames": (b, N, *row_shape), "mask": (b, N) bool}, labels (b, *label_row) float32)

in exactly the order of :meth:`WindowReader.iter_batches` (``deterministic=True``).

TensorFlow is imported only when a dataset is built.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from segflow.config import Inputs, Recipe
from segflow.engine.chunks import SequenceChunks, open_sequence
from segflow.engine.shaping import shape_sequence
from segflow.errors import ConfigError
from segflow.windowed.reader import DEFAULT_POOL_BYTES, WindowReader

if TYPE_CHECKING:
    import tensorflow as tf

    from storage.sequences import SequenceRepository

__all__ = ["window_dataset", "window_training_dataset"]


def window_dataset(
    reader: WindowReader,
    *,
    epoch: int = 0,
    start_batch: int = 0,
    reshuffle_each_iteration: bool = False,
    prefetch: int = 2,
) -> tf.data.Dataset:
    """The batches of ``reader`` for epoch ``epoch`` from batch ``start_batch``, in order.

    Args:
        reader: The window reader (its sequences, window size, batch size and seed).
        epoch: The epoch whose order the batches follow.
        start_batch: First batch (a resume cursor); only the first iteration starts there.
        reshuffle_each_iteration: Each new iteration over the dataset is the next epoch
            (``epoch``, ``epoch + 1``, ...), as ``model.fit(dataset, epochs=...)`` expects;
            False repeats epoch ``epoch`` (what a resumable training loop wants).
        prefetch: Batches kept ready ahead of the consumer (``tf.data.AUTOTUNE`` allowed).

    Returns:
        The dataset; its cardinality is the number of batches from ``start_batch``.

    Raises:
        ConfigError: If ``epoch`` is negative or ``start_batch`` outside the epoch.
    """
    import tensorflow as tf

    reader.check_position(epoch, start_batch)  # here, not inside tf.data at the first element
    pools = _pool_dataset(reader, epoch, start_batch, reshuffle_each_iteration)
    steps = reader.time_steps
    size = reader.batch_size

    def batches(frames: Any, labels: Any, starts: Any, targets: Any) -> tf.data.Dataset:
        count = tf.shape(starts, out_type=tf.int64)[0]

        def cut(k: Any) -> tuple[dict[str, Any], Any]:
            lo, hi = k * size, tf.minimum((k + 1) * size, count)
            index = starts[lo:hi, tf.newaxis] + tf.range(steps, dtype=tf.int64)
            window = tf.gather(frames, index)
            window.set_shape((None, steps, *reader.row_shape))
            mask = tf.ones(tf.shape(index), tf.bool)
            return {"frames": window, "mask": mask}, tf.gather(labels, targets[lo:hi])

        return tf.data.Dataset.range((count + size - 1) // size).map(cut)

    # The next pool is read (Python, GIL released while TensorFlow trains) while batches are
    # cut from the current one.
    dataset = pools.prefetch(1).flat_map(batches)
    remaining = reader.num_batches - start_batch
    if reshuffle_each_iteration:
        # Only the first iteration resumes part-way; the cardinality is an epoch's.
        remaining = reader.num_batches if start_batch == 0 else remaining
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(remaining))
    options = tf.data.Options()
    options.deterministic = True
    # tf.data runs functions single-threaded by default; the gathers copy megabytes a batch.
    options.threading.max_intra_op_parallelism = 0
    return dataset.with_options(options).prefetch(prefetch)


def _pool_dataset(
    reader: WindowReader, epoch: int, start_batch: int, reshuffle: bool
) -> tf.data.Dataset:
    """The rows of each pool, read by a mapped ``numpy_function`` over pool indices.

    Not ``Dataset.from_generator``: it costs milliseconds of Python per element, and creating
    one switches glibc's ``malloc`` to trimming for the whole process (TensorFlow sets
    ``M_TRIM_THRESHOLD``), which slows every large allocation afterwards. Each iteration
    over the dataset asks for its epoch once (the next one when ``reshuffle``); only the
    iteration of ``epoch`` starts at ``start_batch``.
    """
    import tensorflow as tf

    epochs = itertools.count(epoch)
    lock = threading.Lock()
    pool_batches = reader.plan.pool_batches
    first_pool = start_batch // pool_batches

    def next_epoch() -> np.ndarray:
        if not reshuffle:
            return np.array(epoch, np.int64)
        with lock:
            return np.array(next(epochs), np.int64)

    def read_pool(current: Any, index: Any) -> list[np.ndarray]:
        current, index = int(current), int(index)
        first = start_batch if current == epoch and index == first_pool else index * pool_batches
        rows = next(reader.iter_pools(current, first))
        return [rows.frames, rows.labels, rows.starts, rows.targets]

    dtypes = [tf.as_dtype(reader.dtype), tf.float32, tf.int64, tf.int64]
    shapes = [(None, *reader.row_shape), (None, *reader.label_shape), (None,), (None,)]

    def pools(current: tf.Tensor) -> tf.data.Dataset:
        def pool(index: tf.Tensor) -> tuple[tf.Tensor, ...]:
            arrays = tf.numpy_function(read_pool, [current, index], dtypes, stateful=True)
            return tuple(tf.ensure_shape(a, shape) for a, shape in zip(arrays, shapes, strict=True))

        first = tf.where(current == epoch, tf.constant(first_pool, tf.int64), 0)
        return tf.data.Dataset.range(first, reader.plan.num_pools).map(pool)

    start = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    current = start.map(lambda _: tf.numpy_function(next_epoch, [], tf.int64, stateful=True))
    return current.flat_map(pools)


def window_training_dataset(
    source: SequenceRepository | Sequence[SequenceChunks],
    ids: Sequence[str] | None = None,
    *,
    time_steps: int,
    batch_size: int,
    horizon: int = 0,
    inputs: Inputs = "features",
    seed: int = 0,
    shuffle: bool = True,
    pool_bytes: int = DEFAULT_POOL_BYTES,
) -> tf.data.Dataset:
    """Windows of stored (or opened) sequences, ready for ``model.fit``, reshuffled per epoch.

    The window ending at row ``t`` holds rows ``t-N+1 .. t`` of the ``inputs`` (frames,
    labels, or both side by side) and its target is the label of row ``t + horizon`` (see
    :class:`~segflow.config.Recipe`). Each pass over the dataset is the next epoch, shuffled
    from ``seed``.

    Args:
        source: A :class:`~storage.sequences.SequenceRepository`, or sequences already opened
            (:class:`~segflow.engine.chunks.SequenceChunks`, frames and labels).
        ids: Sequence ids in ``source`` (a repository; default: every complete sequence).
        time_steps: Rows per window N.
        batch_size: Windows per batch.
        horizon: Rows ahead of a window's last row whose label it predicts (H >= 0; >= 1
            with label inputs).
        inputs: What a window holds: ``features``, ``labels`` or ``features_and_labels``.
        seed: Seed of the shuffles.
        shuffle: Shuffle every epoch (False: in order, e.g. for validation data).
        pool_bytes: Bytes of rows read and shuffled together.

    Returns:
        A dataset of ``({"frames", "mask"}, labels)`` batches (see the module docstring).

    Raises:
        ConfigError: On a bad argument or recipe, sequences without per-row labels, or no
            window.

    Example::

        import keras
        from segflow.engine.model import ModelConfig, build_model
        from segflow.windowed import window_training_dataset
        from storage import open_store
        from storage.sequences import SequenceRepository

        repo = SequenceRepository(open_store("./store"))
        data = window_training_dataset(repo, time_steps=32, batch_size=64, horizon=1)
        config = ModelConfig(frame_shape=(4,), head="many_to_one")
        model = build_model(config, batch_size=None, stateful=False)
        model.compile(optimizer="adam", loss="mse")
        model.fit(data, epochs=5)
    """
    try:
        recipe = Recipe(inputs=inputs, horizon=horizon, time_steps=time_steps)
    except ValidationError as error:  # say it as segflow's argument errors do: one line
        message = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(message) from None
    if isinstance(source, Sequence):
        opened = list(source)
    else:
        chosen = list(ids) if ids is not None else _complete_ids(source)
        opened = [open_sequence(source, sid, with_labels=True) for sid in chosen]
    sequences = [shape_sequence(seq, recipe) for seq in opened]
    reader = WindowReader(
        sequences,
        time_steps=time_steps,
        batch_size=batch_size,
        seed=seed,
        shuffle=shuffle,
        pool_bytes=pool_bytes,
    )
    return window_dataset(reader, reshuffle_each_iteration=shuffle)


def _complete_ids(repo: SequenceRepository) -> list[str]:
    return [sid for sid in repo.ids() if repo.meta(sid).complete]
