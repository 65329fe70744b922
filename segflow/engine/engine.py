"""The streaming engine: a stateful model run one segment per step over many lanes.

Each step feeds a fixed-shape batch (see :mod:`segflow.engine.pipeline` and
``docs/architecture.md``)::

    frames (B, L, *frame_shape)   mask (B, L) bool   reset (B,) bool
    labels (B, L, *label_shape)   ends (B,) bool          (training and evaluation only)

and runs, inside one ``tf.function`` traced once:

1. zero the state of the lanes flagged in ``reset`` (every lane when
   ``reset_every_segment``, the no-memory baseline);
2. run the stateful model over the segment; padded frames leave a lane's state unchanged;
3. for training, backpropagate through this segment only (truncated BPTT): the state carried
   in is read from non-trainable variables, so it enters the graph as a constant.

Loss and metrics are masked means: ``many_to_many`` weighs every real frame,
``many_to_one`` weighs one prediction per sequence, at the step where it ``ends``. A NaN
label (missing, or past the end of targets shifted by a horizon) weighs zero.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import keras
import numpy as np
import tensorflow as tf

from segflow.engine.dataset import StepIterators
from segflow.engine.lanes import reset_all, reset_lanes, state_variables
from segflow.engine.losses import check_label_shape, elementwise, known_targets, metric_name
from segflow.engine.model import ModelConfig, activate, build_model
from segflow.engine.scheduler import Step
from segflow.errors import ConfigError
from storage.validation import invalid_argument, require_positive_int

if TYPE_CHECKING:
    from segflow.engine.reader import StepReader

__all__ = ["BeforeStep", "Mode", "StreamingEngine", "as_tensor", "pipelined"]

Batch = dict[str, Any]
#: What :meth:`StreamingEngine.stream` runs.
Mode = Literal["train", "evaluate", "predict"]
#: ``before(step, reset) -> reset``: a hook run right before each step (see ``stream``).
BeforeStep = Callable[[Step, np.ndarray], np.ndarray]
T = TypeVar("T")
R = TypeVar("R")


class StreamingEngine:
    """Own a stateful model and stream segment batches through it.

    State is never reset implicitly between calls (only by the ``reset`` flags of the batches),
    so a run restored from a checkpoint carries on exactly where it stopped.

    Args:
        config: The model configuration.
        lanes: Number of lanes B (the fixed batch size).
        segment_length: Frames per step L.
        optimizer: A Keras optimizer; default Adam with ``learning_rate``.
        learning_rate: Learning rate of the default optimizer.
        reset_every_segment: Zero every lane before every step (the baseline without memory
            across segments).
        label_shape: Shape of one frame's label: ``(outputs,)`` or ``()`` (the default for
            ``multiclass``, a class index; for the other tasks ``()`` needs ``outputs == 1``).
            A ``multiclass`` label of shape ``(outputs,)`` is one-hot.
        seed: Seed of the initial weights.

    Example:
        >>> engine = StreamingEngine(ModelConfig(frame_shape=(4,), lstm_units=[8]),
        ...                          lanes=2, segment_length=5)
        >>> engine.model.output_shape
        (2, None, 1)
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        lanes: int,
        segment_length: int,
        optimizer: keras.optimizers.Optimizer | None = None,
        learning_rate: float = 1e-3,
        reset_every_segment: bool = False,
        label_shape: tuple[int, ...] | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.seed = seed
        self.lanes = require_positive_int("lanes", lanes)
        self.segment_length = require_positive_int("segment_length", segment_length)
        self.reset_every_segment = reset_every_segment
        self.label_shape = check_label_shape(config, label_shape)
        self.model = build_model(config, batch_size=self.lanes, stateful=True, seed=seed)
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.optimizer = optimizer
        # Built eagerly so its variables exist before tracing and before a checkpoint restore.
        self.optimizer.build(self.model.trainable_variables)
        specs = self._specs()
        self.predict_step = tf.function(self._predict_step, input_signature=specs[:3])
        self.train_step = tf.function(self._train_step, input_signature=specs)
        self.eval_step = tf.function(self._eval_step, input_signature=specs)
        self._next_steps: dict[str, Callable[..., Any]] = {}
        # Datasets' iterators kept between passes of stream() (see StepIterators).
        self._iterators = StepIterators()

    # ---------------------------------------------------------------- step functions (graph)

    def _specs(self) -> list[tf.TensorSpec]:
        b, t = self.lanes, self.segment_length
        return [
            tf.TensorSpec((b, t, *self.config.frame_shape), self.config.input_dtype, name="frames"),
            tf.TensorSpec((b, t), tf.bool, name="mask"),
            tf.TensorSpec((b,), tf.bool, name="reset"),
            tf.TensorSpec((b, t, *self.label_shape), tf.float32, name="labels"),
            tf.TensorSpec((b,), tf.bool, name="ends"),
        ]

    def _forward(
        self, frames: tf.Tensor, mask: tf.Tensor, reset: tf.Tensor, training: bool
    ) -> tf.Tensor:
        if self.reset_every_segment:
            reset = tf.ones_like(reset)
        reset_lanes(self.model, reset)
        return self.model({"frames": frames, "mask": mask}, training=training)

    def _predict_step(self, frames: tf.Tensor, mask: tf.Tensor, reset: tf.Tensor) -> tf.Tensor:
        """Predictions for one step: (B, L, outputs), or (B, outputs) for many_to_one."""
        return activate(self.config, self._forward(frames, mask, reset, training=False))

    def _train_step(
        self,
        frames: tf.Tensor,
        mask: tf.Tensor,
        reset: tf.Tensor,
        labels: tf.Tensor,
        ends: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """One optimizer step on one segment; returns the step's loss/metric sums and count."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self._forward(frames, mask, reset, training=True)
            sums = self._masked_sums(logits, labels, mask, ends)
            loss = sums["loss_sum"] / tf.maximum(sums["count"], 1.0)
            # A loss-scale optimizer (mixed precision) scales it; others return it as is.
            loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return sums

    def _eval_step(
        self,
        frames: tf.Tensor,
        mask: tf.Tensor,
        reset: tf.Tensor,
        labels: tf.Tensor,
        ends: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """Loss/metric sums and count of one step, without updating the weights."""
        logits = self._forward(frames, mask, reset, training=False)
        return self._masked_sums(logits, labels, mask, ends)

    def _masked_sums(
        self, logits: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor, ends: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        if self.config.head == "many_to_one":
            # The sequence's label is read at its last real frame of the step that ends it.
            last = tf.maximum(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1) - 1, 0)
            labels = tf.gather(labels, last, axis=1, batch_dims=1)
            weights = tf.cast(ends, tf.float32)
        else:
            weights = tf.cast(mask, tf.float32)
        labels, known = known_targets(labels, self.label_shape)  # NaN labels weigh zero
        weights *= known
        loss, metric = elementwise(self.config, self.label_shape, logits, labels)
        return {
            "loss_sum": tf.reduce_sum(loss * weights),
            "metric_sum": tf.reduce_sum(metric * weights),
            "count": tf.reduce_sum(weights),
        }

    # ---------------------------------------------------------------- steps on a dataset

    def _next_step(self, mode: Mode) -> Callable[..., Any]:
        """The step function of ``mode`` that takes its batch from a dataset iterator.

        ``step(iterator, reset, reset_given)`` pulls the next element inside the graph (the
        ``IteratorGetNext`` op, as Keras' ``fit`` does), so batches never become eager
        tensors in Python; ``reset`` replaces the element's flags when ``reset_given``.
        Traced once per dataset element spec, and kept for the engine's lifetime.
        """
        step = self._next_steps.get(mode)
        if step is None:
            run = {"predict": self._predict_next, "train": self._train_next}.get(
                mode, self._eval_next
            )
            # No AutoGraph: nothing here branches on tensors, and converting the model's
            # helpers measured fragile (it rewrote calls into keras code).
            step = self._next_steps[mode] = tf.function(run, autograph=False)
        return step

    def _next_batch(self, iterator: Any, reset: tf.Tensor, reset_given: tf.Tensor) -> Batch:
        batch = dict(iterator.get_next())
        frames = batch["frames"]
        expected = (self.lanes, self.segment_length, *self.config.frame_shape)
        if tuple(frames.shape) != expected:
            raise ConfigError(
                f"Received `frames` of shape {tuple(frames.shape)}, expected {expected}."
            )
        batch["frames"] = tf.cast(frames, self.config.input_dtype)
        batch["reset"] = tf.where(reset_given, reset, batch["reset"])
        return batch

    def _predict_next(self, iterator: Any, reset: tf.Tensor, reset_given: tf.Tensor) -> tf.Tensor:
        batch = self._next_batch(iterator, reset, reset_given)
        return self._predict_step(batch["frames"], batch["mask"], batch["reset"])

    def _train_next(
        self, iterator: Any, reset: tf.Tensor, reset_given: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        batch = self._next_batch(iterator, reset, reset_given)
        inputs = (batch["frames"], batch["mask"], batch["reset"])
        return self._train_step(*inputs, self._labels(batch), self._ends(batch, None))

    def _eval_next(
        self, iterator: Any, reset: tf.Tensor, reset_given: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        batch = self._next_batch(iterator, reset, reset_given)
        inputs = (batch["frames"], batch["mask"], batch["reset"])
        return self._eval_step(*inputs, self._labels(batch), self._ends(batch, None))

    # ---------------------------------------------------------------- loops (eager)

    @property
    def metric_name(self) -> str:
        """Name of the metric reported next to the loss: ``accuracy``, or ``mae`` for regression."""
        return metric_name(self.config)

    def predict(
        self, batches: Iterable[Batch], steps: Iterable[Step], lengths: Sequence[int]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stream ``batches`` and yield each sequence's predictions when it ends.

        Args:
            batches: One batch per step (``frames``, ``mask``, ``reset``), in schedule order.
            steps: The schedule steps the batches were built from, from the first step of
                every sequence they carry.
            lengths: Frames per sequence (the ``lengths`` given to the scheduler).

        Yields:
            ``(sequence_index, predictions)``: (T, outputs) aligned to the sequence's frames
            for ``many_to_many``, (outputs,) for ``many_to_one``. Padded frames never appear.
            Zero-length sequences are never scheduled, so never yielded.

        Raises:
            ConfigError: If batches and steps differ in number, or a sequence's first slot
                does not start at frame 0.
        """
        seen: dict[int, int] = {}  # frames streamed so far, per unfinished sequence
        chunks: dict[int, list[np.ndarray]] = {}
        per_frame = self.config.head == "many_to_many"
        if isinstance(batches, tf.data.Dataset):
            results: Iterable[tuple[Any, Any]] = self._on_dataset(batches, "predict", steps)
        else:
            predict = lambda pair: self.predict_step(*self._inputs(pair[0])).numpy()  # noqa: E731
            results = (
                (step, out) for (_, step), out in pipelined(_paired(batches, steps), predict)
            )
        for step, outputs in results:
            for lane, slot in enumerate(step.slots):
                if slot.sequence is None:
                    continue
                _check_contiguous(slot, seen.get(slot.sequence, 0))
                seen[slot.sequence] = slot.stop
                if per_frame:
                    chunks.setdefault(slot.sequence, []).append(outputs[lane, : slot.valid])
                if slot.stop == lengths[slot.sequence]:
                    del seen[slot.sequence]
                    done = np.concatenate(chunks.pop(slot.sequence)) if per_frame else outputs[lane]
                    yield slot.sequence, np.array(done)

    def stream(
        self,
        reader: StepReader,
        mode: Mode,
        *,
        start_step: int = 0,
        before: BeforeStep | None = None,
    ) -> Iterator[tuple[Step, Any]]:
        """Run ``reader``'s schedule from ``start_step`` through one step function, in order.

        This is the production input path of training, evaluation and prediction: the
        reader's batches are read ahead while a step runs, and each step's result is handed
        back with the schedule step it ran. The dataset's iterator of a pass run to the end
        is kept for the next pass over the same reader from the same step (an epoch): see
        :class:`~segflow.engine.dataset.StepIterators`.

        Args:
            reader: The batches (with labels for ``train`` and ``evaluate``).
            mode: ``train`` (an optimizer step per batch), ``evaluate`` or ``predict``.
            start_step: First step (a resume cursor).
            before: Called as ``before(step, reset) -> reset`` right before each step, when
                no step is running: it may write lane state (a continued sequence's saved
                state) and returns the reset flags to use.

        Yields:
            ``(step, result)``: for ``predict`` the activated outputs, (B, L, outputs) or
            (B, outputs) for ``many_to_one``; for ``train`` and ``evaluate`` the step's
            ``{"loss_sum", "metric_sum", "count"}`` as floats. While the caller holds a
            pair, no step runs: the lane state is the state after that step.

        Raises:
            ConfigError: If ``mode`` is unknown, or ``train``/``evaluate`` without labels.
        """
        if mode not in ("train", "evaluate", "predict"):
            raise invalid_argument("mode", "'train', 'evaluate' or 'predict'", mode)
        if mode != "predict" and not reader.with_labels:
            raise ConfigError(
                f"Received a reader without labels for mode {mode!r}; expected one built "
                "with with_labels=True."
            )

        step_fn = self._next_step(mode)
        # A prediction runs its pass once; training and validation run theirs every epoch.
        again = mode != "predict"
        with self._iterators.open(reader, start_step, again=again) as iterator:
            reset_given = tf.constant(True)

            def run(step: Step) -> Any:
                reset = np.fromiter((s.reset for s in step.slots), bool, count=self.lanes)
                if before is not None:
                    reset = before(step, reset)
                # A tensor, not the array: tf.function binds NumPy arguments slowly (~1 ms).
                result = step_fn(iterator, tf.constant(reset, tf.bool), reset_given)
                if mode == "predict":
                    return result.numpy()
                return {key: float(value) for key, value in result.items()}

            # The step runs in a worker thread: measured 25% faster than calling it from
            # this one while tf.data's thread assembles the next batch (GIL hand-offs).
            yield from pipelined(reader.steps(start_step), run)

    def fit_epoch(
        self, batches: Iterable[Batch], steps: Iterable[Step] | None = None
    ) -> dict[str, float]:
        """Train on every batch once; return the epoch's masked mean loss and metric.

        Args:
            batches: Batches with ``labels`` (and ``ends`` for ``many_to_one``, unless
                ``steps`` is given to derive it).
            steps: The matching schedule steps; only needed when batches lack ``ends``.

        Returns:
            ``{"loss": ..., "accuracy": ...}`` (``"mae"`` instead of ``"accuracy"`` for
            regression), averaged over every weighted frame (or sequence) of the epoch.
        """
        if isinstance(batches, tf.data.Dataset):
            return self._totals(sums for _, sums in self._on_dataset(batches, "train", steps))
        return self._run(self.train_step, batches, steps)

    def evaluate(
        self, batches: Iterable[Batch], steps: Iterable[Step] | None = None
    ) -> dict[str, float]:
        """Like :meth:`fit_epoch` without updating the weights."""
        if isinstance(batches, tf.data.Dataset):
            return self._totals(sums for _, sums in self._on_dataset(batches, "evaluate", steps))
        return self._run(self.eval_step, batches, steps)

    def _run(
        self,
        step_fn: Callable[..., dict[str, tf.Tensor]],
        batches: Iterable[Batch],
        steps: Iterable[Step] | None,
    ) -> dict[str, float]:
        pairs = _paired(batches, steps) if steps is not None else ((b, None) for b in batches)

        def run(pair: tuple[Batch, Step | None]) -> dict[str, tf.Tensor]:
            batch, step = pair
            return step_fn(*self._inputs(batch), self._labels(batch), self._ends(batch, step))

        return self._totals(sums for _, sums in pipelined(pairs, run))

    def _totals(self, results: Iterable[dict[str, Any]]) -> dict[str, float]:
        totals = {"loss_sum": 0.0, "metric_sum": 0.0, "count": 0.0}
        for sums in results:
            for key, value in sums.items():
                totals[key] += float(value)
        count = max(totals["count"], 1.0)
        return {"loss": totals["loss_sum"] / count, self.metric_name: totals["metric_sum"] / count}

    def _on_dataset(
        self, dataset: tf.data.Dataset, mode: Mode, steps: Iterable[Step] | None
    ) -> Iterator[tuple[Step | None, Any]]:
        """Run ``mode``'s step on every element of ``dataset``; yield ``(step, result)``.

        With ``steps``, there must be one element per step; without, every element runs
        (``step`` is None) with its own ``reset`` flags.
        """
        step_fn = self._next_step(mode)
        iterator = iter(dataset)
        keep = (tf.zeros((self.lanes,), tf.bool), tf.constant(False))

        def run(step: Step | None) -> Any:
            try:
                result = step_fn(iterator, *keep)
            except tf.errors.OutOfRangeError:
                return _END
            if mode == "predict":
                return result.numpy()
            return {key: float(value) for key, value in result.items()}

        items: Iterable[Step | None] = steps if steps is not None else itertools.repeat(None)
        for step, result in pipelined(items, run):
            if result is _END:
                if steps is not None:
                    raise ConfigError("Received fewer batches than steps; expected one per step.")
                return
            yield step, result
        if iterator.get_next_as_optional().has_value():
            raise ConfigError("Received more batches than steps; expected one batch per step.")

    # ---------------------------------------------------------------- batch conversion

    def _inputs(self, batch: Batch) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        b, t = self.lanes, self.segment_length
        frame_shape = (b, t, *self.config.frame_shape)
        return (
            _tensor(batch, "frames", self.config.input_dtype, frame_shape),
            _tensor(batch, "mask", tf.bool, (b, t)),
            _tensor(batch, "reset", tf.bool, (b,)),
        )

    def _labels(self, batch: Batch) -> tf.Tensor:
        if "labels" not in batch:
            raise ConfigError(
                "Received a batch without `labels`; training and evaluation need them."
            )
        labels = _tensor(batch, "labels", tf.float32)
        expected = (self.lanes, self.segment_length, *self.label_shape)
        if tuple(labels.shape) != expected:
            # One label per frame either way: (B, L, 1) and (B, L) are interchangeable.
            same = {(): (*expected, 1), (1,): expected[:-1]}.get(self.label_shape)
            if tuple(labels.shape) != same:
                raise ConfigError(
                    f"Received `labels` of shape {tuple(labels.shape)}, expected {expected} "
                    f"(lanes, segment_length, *label_shape)."
                )
            labels = tf.reshape(labels, expected)
        return labels

    def _ends(self, batch: Batch, step: Step | None) -> tf.Tensor:
        if "ends" in batch:
            return _tensor(batch, "ends", tf.bool, (self.lanes,))
        if step is not None:
            return tf.constant([slot.ends for slot in step.slots], tf.bool)
        if self.config.head == "many_to_one":
            raise ConfigError(
                "Received a batch without `ends` and no `steps`; the many_to_one head needs "
                "one or the other to know where sequences end."
            )
        return tf.zeros((self.lanes,), tf.bool)

    # ---------------------------------------------------------------- state and checkpoints

    def reset_state(self) -> None:
        """Zero every lane's state (e.g. before streaming an unrelated set of sequences)."""
        reset_all(self.model)

    def close(self) -> None:
        """Stop reading ahead and drop the datasets' iterators kept between passes.

        Call it when done with the engine (or use it as a context manager). Left to the
        garbage collector, a kept iterator (its reader threads, its prefetched next pass) was
        measured to stall a later collection, wherever it happened to run, by up to 30 s.
        """
        self._iterators.clear()

    def __enter__(self) -> StreamingEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stateless_copy(self) -> keras.Model:
        """A stateless model (any batch size) with the current weights, for whole sequences."""
        model = build_model(self.config, batch_size=None, stateful=False, seed=self.seed)
        model.set_weights(self.model.get_weights())
        return model

    def checkpoint_objects(self) -> dict[str, Any]:
        """Objects to hand to ``tf.train.Checkpoint(**objects)``: weights, optimizer, lane state.

        The lane state is listed on its own because ``model.save_weights`` does not save it.
        """
        lane_state = {key.replace("/", "."): v for key, v in state_variables(self.model).items()}
        return {"model": self.model, "optimizer": self.optimizer, "lane_state": lane_state}


def pipelined(items: Iterable[T], run: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """Yield ``(item, run(item))`` in order, producing the next item while ``run`` works.

    ``run`` executes in one worker thread (TensorFlow releases the GIL while a step runs),
    while this generator's caller thread pulls the next item from ``items`` (reading and
    assembling a batch). Nothing else runs while the caller handles a yielded pair, so the
    model's state then is exactly the state after ``item``: safe for checkpoints and reads
    of lane state. Measured on 2 cores with a small model: the input pipeline's share of a
    step fell by about half.

    Args:
        items: The inputs, produced lazily (e.g. ``StepReader.iter_batches()``).
        run: The step to run on each item.

    Raises:
        Whatever ``run`` or ``items`` raises, at the item concerned.
    """
    iterator = iter(items)
    item = next(iterator, _END)
    if item is _END:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segflow-step") as pool:
        future = pool.submit(run, item)
        while True:
            upcoming = next(iterator, _END)  # produced while `item` runs
            result = future.result()
            yield item, result
            if upcoming is _END:
                return
            item, future = upcoming, pool.submit(run, upcoming)


_END: Any = object()


def as_tensor(value: Any) -> tf.Tensor:
    """Return ``value`` as a tensor, sharing a NumPy array's memory where TensorFlow can.

    ``tf.convert_to_tensor`` copies NumPy arrays (measured: +0.25 ms per 1 MB batch per step,
    a few percent of a small model's step). DLPack hands TensorFlow the array's own memory
    instead; the tensor keeps the array alive, so the pipeline's recycled batch buffers (see
    :mod:`segflow.engine.pipeline`) are not reused while it exists. Arrays DLPack cannot carry
    (not C-contiguous, not 64-byte aligned, read-only) are converted by copy as before.
    """
    if (
        isinstance(value, np.ndarray)
        and value.flags.c_contiguous
        and value.flags.writeable
        and value.ctypes.data % _DLPACK_ALIGN == 0
        and value.dtype.isnative
    ):
        try:
            return tf.experimental.dlpack.from_dlpack(value.__dlpack__())
        except (TypeError, ValueError, BufferError, tf.errors.InvalidArgumentError):
            pass  # a dtype or layout DLPack does not take: copy instead
    return tf.convert_to_tensor(value)


#: Alignment TensorFlow needs to use external CPU memory in place.
_DLPACK_ALIGN = 64


def _tensor(batch: Batch, key: str, dtype: Any, shape: tuple[int, ...] | None = None) -> tf.Tensor:
    value = as_tensor(batch[key])
    if shape is not None and tuple(value.shape) != shape:
        raise ConfigError(f"Received `{key}` of shape {tuple(value.shape)}, expected {shape}.")
    return value if value.dtype == tf.as_dtype(dtype) else tf.cast(value, dtype)


def _paired(batches: Iterable[Batch], steps: Iterable[Step]) -> Iterator[tuple[Batch, Step]]:
    batch_iter, step_iter = iter(batches), iter(steps)
    for count, batch in enumerate(batch_iter):
        step = next(step_iter, None)
        if step is None:
            raise ConfigError(
                f"Received more batches than steps: only {count} steps for {count + 1}+ batches."
            )
        yield batch, step
    if next(step_iter, None) is not None:
        raise ConfigError("Received fewer batches than steps; expected one batch per step.")


def _check_contiguous(slot: Any, seen: int) -> None:
    if slot.start != seen:
        raise ConfigError(
            f"Sequence {slot.sequence}: expected its slot to start at frame {seen} (steps must run "
            f"from the sequence's first step, in order), got start {slot.start}."
        )
