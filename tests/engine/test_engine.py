"""Tests of the stateful model, lane state helpers and streaming engine.

Batches are built here in NumPy from in-memory sequences (one per scheduler step), so the
engine is tested without the store or the tf.data pipeline.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import keras
import numpy as np
import pydantic
import pytest
import tensorflow as tf

from segflow.engine.engine import StreamingEngine
from segflow.engine.lanes import read_lane_state, reset_lanes, state_variables, write_lane_state
from segflow.engine.model import ModelConfig, build_model
from segflow.engine.scheduler import Step, masks, schedule
from segflow.errors import ConfigError

FEATURES = 3


# ------------------------------------------------------------------------------ helpers


def make_batches(
    sequences: Sequence[np.ndarray],
    lanes: int,
    segment_length: int,
    *,
    labels: Sequence[np.ndarray] | None = None,
    pad_noise: bool = True,
) -> tuple[list[Step], list[dict[str, np.ndarray]], list[int]]:
    """Slice in-memory sequences into one batch per schedule step.

    Padded frames are filled with large noise (not zeros) unless ``pad_noise`` is False, so a
    mask that is ignored shows up as a wrong output.
    """
    rng = np.random.default_rng(123)
    lengths = [len(s) for s in sequences]
    frame_shape, dtype = sequences[0].shape[1:], sequences[0].dtype
    steps = list(schedule(lengths, lanes, segment_length))
    batches = []
    for step in steps:
        mask, reset = masks(step, segment_length)
        shape = (lanes, segment_length, *frame_shape)
        frames = (rng.normal(0, 50, shape) if pad_noise else np.zeros(shape)).astype(dtype)
        batch = {"frames": frames, "mask": mask, "reset": reset}
        batch["ends"] = np.array([slot.ends for slot in step.slots])
        if labels is not None:
            batch["labels"] = np.zeros((lanes, segment_length, *labels[0].shape[1:]), np.float32)
        for lane, slot in enumerate(step.slots):
            if slot.sequence is not None:
                frames[lane, : slot.valid] = sequences[slot.sequence][slot.start : slot.stop]
                if labels is not None:
                    rows = labels[slot.sequence][slot.start : slot.stop]
                    batch["labels"][lane, : slot.valid] = rows
        batches.append(batch)
    return steps, batches, lengths


def random_sequences(lengths: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (n, FEATURES)).astype(np.float32) for n in lengths]


def whole_pass(model: keras.Model, sequence: np.ndarray) -> np.ndarray:
    """Outputs of a stateless model over one whole sequence (batch of one, no padding)."""
    mask = np.ones((1, len(sequence)), bool)
    return np.asarray(model({"frames": sequence[None], "mask": mask}))[0]


def feature_config(**overrides: object) -> ModelConfig:
    defaults = {"frame_shape": (FEATURES,), "lstm_units": [6, 5], "outputs": 2}
    return ModelConfig(**{**defaults, **overrides})


def step_outputs(engine: StreamingEngine, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    engine.reset_state()
    return [engine.predict_step(b["frames"], b["mask"], b["reset"]).numpy() for b in batches]


# ------------------------------------------------------------------------------ configuration


def test_config_rejects_empty_lstm_units() -> None:
    expected = "expected a non-empty list of positive integers, got \\[\\]"
    with pytest.raises(pydantic.ValidationError, match=expected):
        ModelConfig(frame_shape=(3,), lstm_units=[])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lstm_units": [4, 0]}, "`lstm_units`"),  # a zero-unit layer
        ({"encoder": "conv"}, "expected a shape of rank 2 or 3"),  # conv needs images
        ({"task": "multiclass", "outputs": 1}, "at least 2 classes"),
        ({"frame_shape": (3, 0)}, "tuple of positive integers"),
        ({"outputs": 0}, "`outputs`, expected a positive integer"),
        ({"dropout": 0.5}, "Extra inputs are not permitted"),  # unknown field
    ],
)
def test_config_rejects_invalid_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        ModelConfig(**{"frame_shape": (3,), **overrides})


def test_config_hash_is_stable_and_distinguishes_configs() -> None:
    a = feature_config()
    assert a.config_hash() == feature_config().config_hash()
    assert a.config_hash() != feature_config(lstm_units=[6, 4]).config_hash()
    with pytest.raises(pydantic.ValidationError):
        a.outputs = 3  # type: ignore[misc]  # frozen


def test_build_model_needs_a_batch_size_when_stateful() -> None:
    with pytest.raises(ConfigError, match="`batch_size`, expected a positive integer, got None"):
        build_model(feature_config(), batch_size=None, stateful=True)


def test_engine_rejects_a_label_shape_that_does_not_fit() -> None:
    with pytest.raises(ConfigError, match="`label_shape`"):
        StreamingEngine(feature_config(), lanes=2, segment_length=3, label_shape=(3,))


# ------------------------------------------------------------------------------ equivalence


@pytest.mark.parametrize(
    ("lanes", "segment_length", "lengths", "head"),
    [
        (1, 4, [10], "many_to_many"),  # one lane, length not a multiple of L
        (2, 3, [7, 1, 11, 5, 3, 3], "many_to_many"),  # mixed lengths sharing lanes
        (3, 5, [13, 0, 4, 9, 20, 2, 6, 5], "many_to_many"),  # empty sequence, exact multiples
        (4, 1, [3, 2, 4], "many_to_many"),  # L = 1, an idle lane from the start
        (2, 4, [9, 2, 6, 13, 1], "many_to_one"),  # last real frame lands anywhere in a segment
    ],
)
def test_streaming_equals_one_pass_over_each_whole_sequence(
    lanes: int, segment_length: int, lengths: list[int], head: str
) -> None:
    keras.utils.set_random_seed(1)
    engine = StreamingEngine(feature_config(head=head), lanes=lanes, segment_length=segment_length)
    stateless = engine.stateless_copy()
    sequences = random_sequences(lengths)
    steps, batches, lengths = make_batches(sequences, lanes, segment_length)

    results = dict(engine.predict(batches, steps, lengths))

    assert sorted(results) == [i for i, n in enumerate(lengths) if n > 0]
    for index, outputs in results.items():
        expected = whole_pass(stateless, sequences[index])
        assert outputs.shape == expected.shape
        np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def order_engine() -> StreamingEngine:
    keras.utils.set_random_seed(2)
    return StreamingEngine(feature_config(lstm_units=[4]), lanes=3, segment_length=4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_outputs_come_back_whole_and_in_frame_order(
    order_engine: StreamingEngine, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # Lengths around the segment length and its multiples, where off-by-one errors live.
    lengths = rng.choice([0, 1, 3, 4, 5, 8, 9, 15], size=9).tolist()
    sequences = random_sequences(lengths, seed)
    steps, batches, lengths = make_batches(sequences, 3, 4)
    stateless = order_engine.stateless_copy()

    emitted = list(order_engine.predict(batches, steps, lengths))

    # Sequences come out when they end: by ending step, then lane.
    ending = {
        slot.sequence: (step.index, lane)
        for step in steps
        for lane, slot in enumerate(step.slots)
        if slot.sequence is not None and slot.ends
    }
    assert [i for i, _ in emitted] == sorted(ending, key=ending.__getitem__)
    for index, outputs in emitted:
        assert outputs.shape == (lengths[index], 2)
        expected = whole_pass(stateless, sequences[index])
        np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=0)


def test_predict_refuses_steps_that_skip_the_start_of_a_sequence() -> None:
    engine = StreamingEngine(feature_config(), lanes=1, segment_length=2)
    steps, batches, lengths = make_batches(random_sequences([5]), 1, 2)
    with pytest.raises(ConfigError, match="expected its slot to start at frame 0"):
        list(engine.predict(batches[1:], steps[1:], lengths))
    with pytest.raises(ConfigError, match="fewer batches than steps"):
        list(engine.predict(batches[:1], steps, lengths))


# ------------------------------------------------------------------------------ lane isolation


def test_reset_lanes_zeroes_only_the_flagged_lanes() -> None:
    engine = StreamingEngine(feature_config(), lanes=4, segment_length=3)
    rng = np.random.default_rng(0)
    shapes = {k: v.shape for k, v in read_lane_state(engine.model).items()}
    before = {k: rng.normal(size=shape).astype(np.float32) for k, shape in shapes.items()}
    write_lane_state(engine.model, before)
    flags = np.array([False, True, False, True])

    tf.function(lambda r: reset_lanes(engine.model, r))(tf.constant(flags))

    after = read_lane_state(engine.model)
    assert sorted(after) == ["lstm_0/c", "lstm_0/h", "lstm_1/c", "lstm_1/h"]
    for key in before:
        np.testing.assert_array_equal(after[key][flags], 0.0)
        np.testing.assert_array_equal(after[key][~flags], before[key][~flags])


def test_write_lane_state_checks_keys_and_shapes() -> None:
    engine = StreamingEngine(feature_config(), lanes=2, segment_length=3)
    state = read_lane_state(engine.model)
    with pytest.raises(ConfigError, match="expected keys"):
        write_lane_state(engine.model, {"lstm_0/h": state["lstm_0/h"]})
    state["lstm_1/c"] = np.zeros((3, 5))
    with pytest.raises(ConfigError, match=r"expected shape \(2, 5\), got \(3, 5\)"):
        write_lane_state(engine.model, state)


def test_padded_frames_leave_the_state_unchanged() -> None:
    keras.utils.set_random_seed(7)
    padded = StreamingEngine(feature_config(), lanes=2, segment_length=5)
    exact = StreamingEngine(feature_config(), lanes=2, segment_length=2)
    exact.model.set_weights(padded.model.get_weights())
    frames = np.random.default_rng(7).normal(0, 50, (2, 5, FEATURES)).astype(np.float32)
    mask = np.zeros((2, 5), bool)
    mask[:, :2] = True  # two real frames, then three frames of large noise
    reset = np.array([True, True])

    padded.predict_step(frames, mask, reset)
    exact.predict_step(frames[:, :2], mask[:, :2], reset)

    for key, value in read_lane_state(padded.model).items():
        np.testing.assert_allclose(value, read_lane_state(exact.model)[key], atol=1e-6)


@pytest.mark.parametrize("change", ["reset", "padding", "frames"])
def test_changing_one_lane_leaves_every_other_lane_untouched(change: str) -> None:
    keras.utils.set_random_seed(3)
    lanes, lane = 4, 2
    engine = StreamingEngine(feature_config(), lanes=lanes, segment_length=3)
    _, batches, _ = make_batches(random_sequences([9, 7, 12, 10]), lanes, 3)
    altered = [{k: v.copy() for k, v in b.items()} for b in batches]
    if change == "reset":  # reset lane 2 in the middle of its sequence
        altered[2]["reset"][lane] = True
    elif change == "padding":  # lane 2 loses its last real frames
        altered[1]["mask"][lane, 1:] = False
    else:
        altered[1]["frames"][lane] += 5.0

    reference, changed = step_outputs(engine, batches), step_outputs(engine, altered)

    others = [i for i in range(lanes) if i != lane]
    for ref, out in zip(reference, changed, strict=True):
        np.testing.assert_array_equal(out[others], ref[others])
    assert not np.allclose(reference[2][lane], changed[2][lane])  # the change did matter


# ------------------------------------------------------------------------------ statefulness


def _numpy_lstm(
    x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """Reference LSTM (Keras gate order i, f, c, o) over one (T, features) sequence."""
    units = recurrent.shape[0]
    h, c, outputs = np.zeros(units), np.zeros(units), []
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for frame in x:
        z = frame @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.array(outputs)


def test_golden_outputs_then_reset_then_the_same_outputs_again() -> None:
    config = ModelConfig(frame_shape=(2,), lstm_units=[3], outputs=1)
    engine = StreamingEngine(config, lanes=1, segment_length=4)
    # Fixed weights, so the expected values do not depend on initializers.
    weights = [
        np.linspace(-1, 1, w.size, dtype=np.float32).reshape(w.shape)
        for w in engine.model.get_weights()
    ]
    engine.model.set_weights(weights)
    x = np.linspace(-2, 2, 16, dtype=np.float32).reshape(8, 2)
    mask, no_reset = np.ones((1, 4), bool), np.array([False])
    kernel, recurrent, bias, head_kernel, head_bias = weights
    golden = _numpy_lstm(x, kernel, recurrent, bias) @ head_kernel + head_bias

    first = [engine.predict_step(x[None, :4], mask, np.array([True])).numpy()[0]]
    first.append(engine.predict_step(x[None, 4:], mask, no_reset).numpy()[0])
    carried_again = engine.predict_step(x[None, 4:], mask, no_reset).numpy()[0]
    engine.reset_state()
    again = [engine.predict_step(x[None, :4], mask, no_reset).numpy()[0]]
    again.append(engine.predict_step(x[None, 4:], mask, no_reset).numpy()[0])

    np.testing.assert_allclose(np.concatenate(first), golden, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(np.concatenate(again), np.concatenate(first))
    assert not np.allclose(carried_again, first[1])  # without a reset the state carries on


def test_step_functions_trace_once() -> None:
    engine = StreamingEngine(feature_config(task="binary"), lanes=2, segment_length=3)
    sequences = random_sequences([7, 4, 9, 2])
    labels = [np.ones((len(s), 2), np.float32) for s in sequences]
    steps, batches, lengths = make_batches(sequences, 2, 3, labels=labels)

    engine.fit_epoch(batches)
    engine.fit_epoch(batches)
    engine.evaluate(batches)
    list(engine.predict(batches, steps, lengths))

    assert len(batches) > 3
    assert engine.train_step.experimental_get_tracing_count() == 1
    assert engine.eval_step.experimental_get_tracing_count() == 1
    assert engine.predict_step.experimental_get_tracing_count() == 1


def test_gradient_stops_at_the_segment_boundary() -> None:
    """One SGD step on segment 2 equals the gradient with the carried state as a constant."""
    keras.utils.set_random_seed(4)
    config = ModelConfig(frame_shape=(FEATURES,), lstm_units=[4], task="binary")
    engine = StreamingEngine(config, lanes=2, segment_length=3, optimizer=keras.optimizers.SGD(1.0))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, FEATURES)).astype(np.float32)
    y = (rng.random((2, 6)) < 0.5).astype(np.float32)
    mask = np.ones((2, 3), bool)
    mask[1, 2] = False  # one padded frame in segment 2
    engine.predict_step(x[:, :3], np.ones((2, 3), bool), np.array([True, True]))
    carried, before = read_lane_state(engine.model), engine.model.get_weights()

    engine.train_step(x[:, 3:], mask, np.array([False, False]), y[:, 3:], np.array([False, False]))
    update = [b - a for a, b in zip(engine.model.get_weights(), before, strict=True)]

    def segment2_gradients(
        initial_state: list[tf.Tensor] | None, frames: np.ndarray, full_mask: np.ndarray
    ) -> list[tf.Tensor]:
        stateless = build_model(config, batch_size=None, stateful=False)
        stateless.set_weights(before)
        lstm, head = stateless.get_layer("lstm_0"), stateless.get_layer("head")
        with tf.GradientTape() as tape:
            logits = head(lstm(frames, initial_state=initial_state, mask=full_mask))[..., 0][:, -3:]
            losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=y[:, 3:], logits=logits)
            loss = tf.reduce_sum(losses * mask) / mask.sum()
        return tape.gradient(loss, stateless.trainable_variables)

    constant_state = [tf.constant(carried["lstm_0/h"]), tf.constant(carried["lstm_0/c"])]
    truncated = segment2_gradients(constant_state, x[:, 3:], mask)
    full_mask = np.concatenate([np.ones((2, 3), bool), mask], axis=1)
    through_both = segment2_gradients(None, x, full_mask)  # full BPTT from frame 0

    for got, want in zip(update, truncated, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    assert not np.allclose(update[1], through_both[1].numpy(), atol=1e-4)  # the two differ
    assert all(v.trainable is False for v in state_variables(engine.model).values())


# ------------------------------------------------------------------------------ losses


def test_loss_ignores_padding_and_many_to_one_reads_only_the_last_frame() -> None:
    sequences = random_sequences([5, 3, 7])
    rng = np.random.default_rng(0)
    labels = [rng.random((len(s), 1)).astype(np.float32) for s in sequences]
    _, batches, _ = make_batches(sequences, 2, 3, labels=labels)
    for head in ("many_to_many", "many_to_one"):
        keras.utils.set_random_seed(5)
        config = feature_config(head=head, outputs=1, task="binary")
        engine = StreamingEngine(config, lanes=2, segment_length=3)
        base = engine.evaluate(batches)
        noisy = [{**b, "labels": np.where(b["mask"][..., None], b["labels"], 1.0)} for b in batches]
        assert engine.evaluate(noisy) == base  # padded labels never count
        if head == "many_to_one":
            # Only the labels at the frame where each sequence ends count.
            last = [
                {**b, "labels": np.where(_last_frame(b)[..., None], b["labels"], 0.5)}
                for b in batches
            ]
            assert engine.evaluate(last) == base


def _last_frame(batch: dict[str, np.ndarray]) -> np.ndarray:
    valid = batch["mask"].sum(axis=1)
    last = np.zeros_like(batch["mask"])
    last[np.arange(len(valid)), np.maximum(valid - 1, 0)] = batch["ends"]
    return last


# ------------------------------------------------------------------------------ encoders


@pytest.mark.parametrize(
    ("encoder", "frame_shape"),
    [
        ("avgpool", (6, 5)),  # grayscale: a channel axis is added
        ("avgpool", (6, 5, 3)),  # odd sizes: "same" pooling rounds up
        ("conv", (6, 5)),
        ("conv", (8, 8, 3)),
        ("flatten", (4, 3)),
    ],
)
def test_uint8_frames_through_image_encoders(encoder: str, frame_shape: tuple[int, ...]) -> None:
    keras.utils.set_random_seed(6)
    config = ModelConfig(
        frame_shape=frame_shape,
        input_dtype="uint8",
        encoder=encoder,
        lstm_units=[4],
        outputs=2,
        conv_filters=[4, 4],
    )
    engine = StreamingEngine(config, lanes=2, segment_length=3)
    rng = np.random.default_rng(6)
    sequences = [rng.integers(0, 256, (n, *frame_shape), dtype=np.uint8) for n in (5, 2, 4)]
    steps, batches, lengths = make_batches(sequences, 2, 3)

    results = dict(engine.predict(batches, steps, lengths))

    assert {i: r.shape for i, r in results.items()} == {0: (5, 2), 1: (2, 2), 2: (4, 2)}
    assert all(np.isfinite(r).all() for r in results.values())
    # uint8 is scaled to [0, 1] inside the graph: same as float32 frames divided by 255.
    float_config = config.model_copy(update={"input_dtype": "float32"})
    as_float = build_model(float_config, batch_size=None, stateful=False)
    as_float.set_weights(engine.model.get_weights())
    expected = whole_pass(as_float, sequences[0].astype(np.float32) / 255)
    np.testing.assert_allclose(results[0], expected, atol=1e-5)


def test_many_to_one_multiclass_yields_one_distribution_per_sequence() -> None:
    config = feature_config(head="many_to_one", task="multiclass", outputs=3)
    engine = StreamingEngine(config, lanes=2, segment_length=4)
    steps, batches, lengths = make_batches(random_sequences([6, 3, 9]), 2, 4)

    results = dict(engine.predict(batches, steps, lengths))

    assert {i: r.shape for i, r in results.items()} == {0: (3,), 1: (3,), 2: (3,)}
    np.testing.assert_allclose([r.sum() for r in results.values()], 1.0, atol=1e-6)


def test_checkpoint_restores_weights_optimizer_and_lane_state(tmp_path) -> None:
    engine = StreamingEngine(feature_config(task="binary"), lanes=2, segment_length=3)
    sequences = random_sequences([5, 4])
    labels = [np.ones((len(s), 2), np.float32) for s in sequences]
    _, batches, _ = make_batches(sequences, 2, 3, labels=labels)
    engine.fit_epoch(batches[:1])
    checkpoint = tf.train.Checkpoint(**engine.checkpoint_objects())
    path = checkpoint.save(str(tmp_path / "ckpt"))
    weights, state = engine.model.get_weights(), read_lane_state(engine.model)

    engine.fit_epoch(batches[1:])  # weights, optimizer and lane state all move on
    checkpoint.restore(path).assert_consumed()

    for got, want in zip(engine.model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)
    for key, value in read_lane_state(engine.model).items():
        np.testing.assert_array_equal(value, state[key])
    assert int(engine.optimizer.iterations) == 1


# ------------------------------------------------------------------------------ memory


def parity_task(
    rng: np.random.Generator, count: int, length: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Feature vectors with rare flashes; the label is the parity of the flashes so far.

    The label at a frame depends on every flash since the sequence began, usually many
    segments back, so only a model that carries state across segments can get it right.
    """
    sequences, labels = [], []
    for _ in range(count):
        flash = rng.random(length) < 0.15
        frames = rng.normal(0, 0.1, (length, 4)).astype(np.float32)
        frames[:, 0] += flash
        sequences.append(frames)
        labels.append((np.cumsum(flash) % 2).astype(np.float32))
    return sequences, labels


def train_parity(reset_every_segment: bool, max_epochs: int) -> float:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    lanes, segment_length, length = 16, 8, 80
    engine = StreamingEngine(
        ModelConfig(frame_shape=(4,), lstm_units=[16], task="binary"),
        lanes=lanes,
        segment_length=segment_length,
        learning_rate=0.02,
        reset_every_segment=reset_every_segment,
    )
    held_out, held_out_labels = parity_task(np.random.default_rng(99), 32, length)
    test = make_batches(held_out, lanes, segment_length, labels=held_out_labels)[1]
    for epoch in range(max_epochs):
        sequences, labels = parity_task(rng, 32, length)
        engine.fit_epoch(make_batches(sequences, lanes, segment_length, labels=labels)[1])
        if epoch % 5 == 4 and engine.evaluate(test)["accuracy"] >= 0.99:
            break
    return engine.evaluate(test)["accuracy"]


def test_carried_state_learns_what_a_per_segment_reset_cannot() -> None:
    carried = train_parity(reset_every_segment=False, max_epochs=120)
    reset = train_parity(reset_every_segment=True, max_epochs=60)
    assert carried >= 0.95, carried
    assert reset <= 0.65, reset


def test_as_tensor_shares_aligned_numpy_memory_and_copies_the_rest() -> None:
    from segflow.engine.engine import as_tensor

    block = np.zeros(4096 + 64, np.uint8)
    start = -block.ctypes.data % 64
    aligned = block[start : start + 4096].view(np.float32).reshape(32, 32)
    shared = as_tensor(aligned)
    aligned[0, 0] = 7.0  # no copy was made: the tensor sees the write
    assert float(shared[0, 0]) == 7.0
    refs = sys.getrefcount(aligned)
    del shared  # the tensor held the array: what keeps recycled batch buffers safe
    assert sys.getrefcount(aligned) == refs - 1

    strided = np.arange(10.0)[::2]
    copied = as_tensor(strided)
    strided.base[0] = 99.0
    assert copied.numpy().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert as_tensor(np.zeros((4,), bool)).dtype == tf.bool


def test_pipelined_runs_in_order_and_never_during_the_callers_turn() -> None:
    from segflow.engine.engine import pipelined

    events: list[str] = []

    def produce():
        for i in range(4):
            events.append(f"produce {i}")
            yield i

    def run(i: int) -> int:
        events.append(f"run {i}")
        return i * 10

    for item, result in pipelined(produce(), run):
        assert result == item * 10
        events.append(f"handle {item}")
        # The caller's turn: the next item is produced, but no step runs until it is over.
        assert events[-2].startswith(("run", "produce"))
    runs = [e for e in events if not e.startswith("produce")]
    assert runs == [x for i in range(4) for x in (f"run {i}", f"handle {i}")]
    assert events.index("produce 1") < events.index("handle 0")  # read ahead while 0 ran


def test_pipelined_raises_the_failing_step_and_handles_no_items() -> None:
    from segflow.engine.engine import pipelined

    def run(i: int) -> int:
        if i == 2:
            raise ValueError("step 2 failed")
        return i

    seen = []
    with pytest.raises(ValueError, match="step 2 failed"):
        for item, _ in pipelined(range(5), run):
            seen.append(item)
    assert seen == [0, 1]
    assert list(pipelined([], run)) == []
