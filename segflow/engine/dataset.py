"""The schedule's batches as a ``tf.data.Dataset``: segflow's one input pipeline.

Training, evaluation and prediction (:meth:`StreamingEngine.stream
<segflow.engine.engine.StreamingEngine.stream>`) consume this dataset, and so can a user's own
Keras code. It is ``Dataset.range`` over *groups* of consecutive steps, mapped in order (one
call at a time) to the group's batches, split into steps by ``unbatch`` and prefetched. The
batches are built *in the graph*: Python reads the chunks of a group once (reader threads read
the next groups' chunks meanwhile), copies the rows those steps use into one array per field
and computes every step's gather indices with a few vectorised NumPy calls
(:mod:`segflow.engine.stepindex`); one ``tf.numpy_function`` call per group hands these out
(TensorFlow takes aligned arrays without a copy), and ``tf.gather`` places the rows, padding and
NaN targets of all the group's steps in a ``tf.data`` thread, without the GIL. No Python runs
per lane, and none per step.

Why not ``Dataset.from_generator``: measured on 2 cores it cost 3-4 ms of CPU per 1 MB batch,
and creating one switches glibc's ``malloc`` to trimming (``M_TRIM_THRESHOLD`` is set by
TensorFlow's generator op), which slows every large allocation of the process afterwards,
the model's included. A mapped ``numpy_function`` has neither cost.
Why not a graph-only reader (``tf.io.read_file`` + ``decode_raw``): stored chunks carry a
crc32c checksum TensorFlow cannot check, blosc chunks need a Python codec, and S3 chunks
come through fsspec; so Python reads and checks each chunk, once.
Why ``unbatch`` and not a ``flat_map`` over groups: building and instantiating nested dataset
functions measured 0.3-1 s per pass on a busy machine; ``unbatch`` is a native op (it copies
each step's batch out of the group's, a memcpy). Why not a map per step (the previous
design, each call handing out its group's arrays and one step's indices): a ``numpy_function``
call per step and the per-element ``tf.data`` work measured ~20% more CPU per 1 MB step than
one call per group (perf samples of the input path alone, 256-d features, 8-step groups:
3.7-4.0 against 3.1-3.2 ms per step, consumer included, on a loaded machine). Building a dataset and
its iterator still costs 0.05-0.5 s, so the engine keeps an iterator whose pass ended for the
next pass (:class:`StepIterators`).

TensorFlow is imported only when a dataset is built, so the reader and the chunk sources stay
usable without it.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from segflow.engine.reader import StepReader

if TYPE_CHECKING:
    import tensorflow as tf

    from storage.sequences import SequenceRepository

__all__ = ["StepFeed", "StepIterators", "make_dataset", "reader_dataset"]


def make_dataset(
    repo: SequenceRepository,
    ids: Sequence[str],
    *,
    lanes: int,
    segment_length: int,
    with_labels: bool,
    start_step: int = 0,
    prefetch: int = 2,
    readahead: int | None = None,
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
        readahead: Groups of steps whose chunks are read ahead (see
            :meth:`StepReader.iter_groups`); default: enough for two steps.
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
    readahead: int | None = None,
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
    """Serves ``reader``'s steps to a ``tf.data`` pipeline, read a group of steps at a time.

    Python's part per group of steps (:meth:`StepReader.iter_groups`): read each chunk once,
    copy the rows the group uses into one array per field, and compute the gather indices
    of its steps with a few NumPy calls. :meth:`read_group` hands out a group's arrays
    (TensorFlow takes them without a copy); the graph gathers the group's batches (see
    :meth:`dataset`) in a ``tf.data`` thread, without the GIL. :meth:`read` serves one step
    the same way (its group's arrays, the step's indices).

    Groups (or steps) are asked for in order; another one (a new pass over the dataset, or a
    resume) restarts the reading there. The reader threads stop when the last
    step is served, on :meth:`close`, or when the feed is garbage collected.

    Args:
        reader: The batches.
        start_step: First step of the datasets built from this feed.
        group_steps: Steps per group at most (default :attr:`StepReader.group_steps`).
        readahead: Groups of chunks read ahead (see :meth:`StepReader.iter_groups`);
            default: enough groups for two steps.
        workers: Reader threads (see :meth:`StepReader.iter_batches`).

    Raises:
        ConfigError: On a bad ``start_step``, ``group_steps``, ``readahead`` or ``workers``.
    """

    def __init__(
        self,
        reader: StepReader,
        *,
        start_step: int = 0,
        group_steps: int | None = None,
        readahead: int | None = None,
        workers: int | None = None,
    ) -> None:
        group_steps = reader.group_steps if group_steps is None else group_steps
        if readahead is None:  # read at least two steps ahead, as the reader does
            readahead = -(-2 // max(group_steps, 1))
        # Bad arguments fail here rather than inside tf.data (iter_groups checks them when
        # called, and starts no thread before its first group).
        groups = reader.iter_groups(
            start_step, group_steps=group_steps, readahead=readahead, workers=workers
        )
        _close_batches({"batches": groups})
        self.reader = reader
        self.start_step = start_step
        self.group_steps = group_steps
        self._readahead, self._workers = readahead, workers
        self._names: tuple[str, ...] = ("frames", "frame_index", "valid", "reset", "ends")
        if reader.with_labels:
            self._names += ("labels", "label_index")
        self._lock = threading.Lock()
        self._starts = reader.group_starts(start_step, group_steps)
        self._state: dict[str, Any] = {"batches": None, "next": None, "group": None}
        # The generator owns reader threads: stop them when the feed goes away unclosed.
        weakref.finalize(self, _close_batches, self._state)

    def dataset(self, *, prefetch: int = 2) -> tf.data.Dataset:
        """Return the dataset of the batches from ``start_step``, ``prefetch`` kept ready."""
        import tensorflow as tf

        reader = self.reader
        b, length = reader.lanes, reader.segment_length
        spec = reader.batch_spec()
        shapes = {
            "frames": (None, *reader.frame_shape),
            "frame_index": (None, b, length),
            "valid": (None, b),
            "reset": (None, b),
            "ends": (None, b),
            "labels": (None, *(reader.label_shape or ())),
            "label_index": (None, b, length),
        }
        dtypes = {"frames": reader.frame_dtype, "labels": np.float32, "reset": bool, "ends": bool}
        tf_dtypes = [tf.as_dtype(dtypes.get(name, np.int32)) for name in self._names]

        def group_batches(group: tf.Tensor) -> dict[str, tf.Tensor]:
            arrays = tf.numpy_function(self.read_group, [group], tf_dtypes, stateful=True)
            parts = {
                name: tf.ensure_shape(array, shapes[name])
                for name, array in zip(self._names, arrays, strict=True)
            }
            batches = {
                "frames": tf.gather(parts["frames"], parts["frame_index"]),
                "mask": tf.range(length) < parts["valid"][..., tf.newaxis],
                "reset": parts["reset"],
                "ends": parts["ends"],
            }
            if "labels" in parts:
                batches["labels"] = tf.gather(parts["labels"], parts["label_index"])
            return {name: tf.ensure_shape(batches[name], (None, *spec[name][0])) for name in spec}

        groups = tf.data.Dataset.range(len(self._starts) - 1)
        # One call at a time, in order (reading follows the schedule); unbatch (a native op,
        # no nested dataset function) splits each group's batches into steps.
        steps = groups.map(group_batches).unbatch()
        steps = steps.apply(
            tf.data.experimental.assert_cardinality(self._starts[-1] - self.start_step)
        )
        return steps.prefetch(prefetch)

    def read_group(self, group: Any) -> list[np.ndarray]:
        """Return what the graph builds the batches of group ``group`` from, in order.

        The groups are :meth:`StepReader.group_starts` from ``start_step``; the arrays are a
        :class:`~segflow.engine.stepindex.StepGroup`'s, in :meth:`dataset`'s order (rows of
        frames and labels, and every step's indices). Groups are asked for in order; another
        one (a new pass, a resume) restarts the reading there.
        """
        group = int(group)
        with self._lock:
            state = self._state
            if state["next"] != ("group", group):
                _close_batches(state)
                state["batches"] = self.reader.iter_groups(
                    self.start_step,
                    group_steps=self.group_steps,
                    first_group=group,
                    readahead=self._readahead,
                    workers=self._workers,
                )
            served = next(state["batches"])
            state["next"] = ("group", group + 1)
            if group + 2 == len(self._starts):
                _close_batches(state)  # the last group: stop the reader threads now
        return [getattr(served, name) for name in self._names]

    def read(self, index: Any) -> list[np.ndarray]:
        """Return what the graph builds step ``index``'s batch from, in :meth:`dataset`'s order.

        That is the arrays of the step's group (rows of frames, labels) and the step's part
        of its indices (``frame_index``, ``valid``, ``reset``, ``ends``, ``label_index``); see
        :class:`~segflow.engine.reader.StepGroup`. Steps read this way are grouped from the
        first step asked for (not as :meth:`read_group` groups them).
        """
        index = int(index)
        with self._lock:
            state = self._state
            group = state["group"]
            if state["next"] != ("step", index):
                _close_batches(state)
                state["batches"] = self.reader.iter_groups(
                    index,
                    group_steps=self.group_steps,
                    readahead=self._readahead,
                    workers=self._workers,
                )
                group = None
            if group is None or index >= group.first_step + group.steps:
                group = state["group"] = next(state["batches"])
            state["next"] = ("step", index + 1)
            if index + 1 == self.reader.num_steps:
                _close_batches(state)  # the last step: stop the reader threads now
        k = index - group.first_step
        return [
            value if name in ("frames", "labels") else value[k]
            for name, value in ((name, getattr(group, name)) for name in self._names)
        ]

    def close(self) -> None:
        """Stop reading ahead (the next :meth:`read` starts again)."""
        with self._lock:
            _close_batches(self._state)

    def __enter__(self) -> StepFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StepIterators:
    """Iterators over readers' datasets, kept from one full pass to the next.

    Building a dataset and an iterator costs 0.05-0.5 s on a busy 2-core machine (function
    tracing and instantiation): as much as several steps. :meth:`open` hands out an iterator
    over the repeated dataset of ``reader`` from ``start_step``; one whose pass was consumed
    to the end is positioned at the start of the next pass, so it is kept for the next
    :meth:`open` of the same reader and start (an epoch, a validation pass). An iterator
    left part-way (an abandoned or failed pass) is dropped with its feed.

    Args:
        keep: Iterators kept at most (the least recently used is dropped).
    """

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._idle: OrderedDict[tuple[int, int], tuple[StepReader, StepFeed, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def open(self, reader: StepReader, start_step: int = 0, *, again: bool = True) -> Iterator[Any]:
        """Yield an iterator over ``reader``'s batches from ``start_step``, then the next pass's.

        The ``with`` block must consume exactly one pass (``reader.num_steps - start_step``
        elements) to leave the iterator reusable; leaving it by an exception drops it. With
        ``again=False`` (a pass run once, as a prediction is) nothing reads ahead into a
        next pass and the iterator is dropped at the end: on an object store, reads started
        for a pass nobody runs made closing the engine wait for them (~1.5 s).

        Raises:
            ConfigError: As :class:`StepFeed`.
        """
        key = (id(reader), start_step)
        with self._lock:
            entry = self._idle.pop(key, None) if again else None
        if entry is None or entry[0] is not reader:
            feed = StepFeed(reader, start_step=start_step)
            dataset = feed.dataset()
            entry = (reader, feed, iter(dataset.repeat() if again else dataset))
        try:
            yield entry[2]
        except BaseException:
            entry[1].close()
            raise
        if not again:
            entry[1].close()
            return
        with self._lock:
            self._idle[key] = entry
            while len(self._idle) > self._keep:
                self._idle.popitem(last=False)[1][1].close()

    def clear(self) -> None:
        """Drop every kept iterator."""
        with self._lock:
            idle, self._idle = list(self._idle.values()), OrderedDict()
        for _, feed, _ in idle:
            feed.close()


def _close_batches(state: dict[str, Any]) -> None:
    batches: Iterator[Any] | None = state["batches"]
    state.update(batches=None, next=None, group=None)
    close = getattr(batches, "close", None)
    if close is not None:
        close()
