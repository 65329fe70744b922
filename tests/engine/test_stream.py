"""The one input pipeline: the tf.data dataset equals the reader, and ``stream`` consumes it.

``stream`` used to run ``StepReader.iter_batches`` through ``pipelined``; these tests keep that
loop as the oracle (``old_stream``) and check the dataset path gives the same results.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from segflow.engine.dataset import StepFeed, make_dataset, reader_dataset
from segflow.engine.engine import StreamingEngine, as_tensor, pipelined
from segflow.engine.model import ModelConfig
from segflow.engine.reader import StepReader
from segflow.engine.scheduler import Step
from storage.sequences import SequenceRepository
from storage.urls import open_store
from tests.engine.batch_helpers import assert_batches_equal, copied, random_frames
from tests.engine.store_helpers import store_all

LANES, SEGMENT = 2, 3
LENGTHS = [7, 3, 5, 4]


def labelled_reader(shorter_labels: bool = False) -> StepReader:
    frames = random_frames(LENGTHS, (4,), "float32")
    labels = [np.tanh(f[:, :1]).astype(np.float32) for f in frames]
    if shorter_labels:  # targets shifted by a horizon of 2: the last rows have none
        from segflow.engine.chunks import ArrayChunks, SequenceChunks

        sequences = [
            SequenceChunks(str(i), ArrayChunks(f, 3), ArrayChunks(y[2:], 3))
            for i, (f, y) in enumerate(zip(frames, labels, strict=True))
        ]
        return StepReader.from_sources(
            sequences, lanes=LANES, segment_length=SEGMENT, with_labels=True
        )
    return StepReader.from_arrays(
        frames, labels, lanes=LANES, segment_length=SEGMENT, chunk_length=4
    )


def dataset_batches(dataset: tf.data.Dataset) -> list[dict[str, np.ndarray]]:
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset]


# -- the dataset -----------------------------------------------------------------------------


@pytest.mark.parametrize("start_step", [0, 1, 4])
@pytest.mark.parametrize("shorter_labels", [False, True])
def test_dataset_batches_equal_the_readers(start_step: int, shorter_labels: bool) -> None:
    reader = labelled_reader(shorter_labels)
    want = [copied(b) for b in reader.iter_batches(start_step)]
    dataset = reader_dataset(reader, start_step=start_step)
    assert int(dataset.cardinality()) == reader.num_steps - start_step
    assert_batches_equal(dataset_batches(dataset), want)
    assert_batches_equal(dataset_batches(dataset), want)  # a second pass: the same


def test_make_dataset_reads_a_store_from_a_start_step(tmp_path: Path) -> None:
    repo = SequenceRepository(open_store(tmp_path / "store"))
    frames = random_frames(LENGTHS, (3, 2), "uint8")
    ids = store_all(repo, frames, 2, compression="lz4")
    reader = StepReader(repo, ids, lanes=LANES, segment_length=SEGMENT)
    want = [copied(b) for b in reader.iter_batches(2)]
    dataset = make_dataset(
        repo, ids, lanes=LANES, segment_length=SEGMENT, with_labels=False, start_step=2
    )
    assert_batches_equal(dataset_batches(dataset), want)


def test_feed_restarts_on_any_step_and_closes() -> None:
    reader = labelled_reader()
    want = [copied(b) for b in reader.iter_batches()]
    with StepFeed(reader) as feed:
        for index in (3, 4, 0, 1, 1):  # out of order: restarts, same arrays
            got = dict(zip(reader.batch_spec(), feed.read(index), strict=True))
            assert_batches_equal([copied(got)], [want[index]])


# -- stream on the dataset equals the old loop -----------------------------------------------


def old_stream(engine: StreamingEngine, reader: StepReader, mode: str) -> Iterator[Any]:
    """``stream`` as it was: the reader's batches through ``pipelined``."""

    def run(pair: tuple[Step, dict[str, np.ndarray]]) -> Any:
        _, batch = pair
        inputs = [as_tensor(batch[k]) for k in ("frames", "mask", "reset")]
        if mode == "predict":
            return engine.predict_step(*inputs).numpy()
        step = engine.train_step if mode == "train" else engine.eval_step
        sums = step(*inputs, as_tensor(batch["labels"]), as_tensor(batch["ends"]))
        return {key: float(value) for key, value in sums.items()}

    pairs = zip(reader.steps(), reader.iter_batches(), strict=True)
    for (step, _), result in pipelined(pairs, run):
        yield step, result


def new_engine(label_shape: tuple[int, ...] = (1,)) -> StreamingEngine:
    config = ModelConfig(frame_shape=(4,), lstm_units=[6], task="regression")
    return StreamingEngine(config, lanes=LANES, segment_length=SEGMENT, label_shape=label_shape)


@pytest.mark.parametrize("mode", ["predict", "evaluate", "train"])
def test_stream_equals_the_old_loop(mode: str) -> None:
    tf.config.experimental.enable_op_determinism()
    reader = labelled_reader()
    results = []
    for run in (old_stream, lambda e, r, m: e.stream(r, m)):
        engine = new_engine()
        pairs = [(step.index, result) for step, result in run(engine, reader, mode)]
        results.append((pairs, engine.model.get_weights()))
    (old, old_weights), (new, new_weights) = results
    assert [i for i, _ in new] == list(range(reader.num_steps))
    for (_, a), (_, b) in zip(old, new, strict=True):
        if mode == "predict":
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
    for a, b in zip(old_weights, new_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_stream_resumes_and_before_sees_the_schedules_resets() -> None:
    reader = labelled_reader()
    engine = new_engine()
    full = [out for _, out in engine.stream(reader, "predict")]
    engine.reset_state()
    for _ in engine.stream(reader, "predict", start_step=0):
        break  # an abandoned stream stops cleanly
    engine.reset_state()
    seen = []

    def before(step: Step, reset: np.ndarray) -> np.ndarray:
        seen.append((step.index, reset.tolist()))
        return reset

    steps = list(reader.steps())
    head = [out for _, out in engine.stream(reader, "predict", before=before)][:2]
    assert seen == [(s.index, [slot.reset for slot in s.slots]) for s in steps]
    np.testing.assert_array_equal(head[0], full[0])


def test_stream_suffix_equals_a_full_pass() -> None:
    reader = labelled_reader()
    engine = new_engine()
    full = [out for _, out in engine.stream(reader, "predict")]
    # The lane state after step 1 carries on from step 2 exactly as in the full pass.
    engine.reset_state()
    for _ in zip(range(2), engine.stream(reader, "predict"), strict=False):
        pass
    rest = [out for _, out in engine.stream(reader, "predict", start_step=2)]
    for a, b in zip(full[2:], rest, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_step_functions_are_traced_once() -> None:
    reader = labelled_reader()
    engine = new_engine()
    for _ in range(2):
        for mode in ("predict", "evaluate", "train"):
            list(engine.stream(reader, mode))  # type: ignore[arg-type]
        engine.fit_epoch(reader_dataset(reader))
        engine.evaluate(reader_dataset(reader))
        list(engine.predict(reader_dataset(reader), reader.steps(), reader.lengths))
    for mode in ("predict", "evaluate", "train"):
        assert engine._next_steps[mode].experimental_get_tracing_count() == 1, mode


def test_loops_on_a_dataset_equal_the_loops_on_batches() -> None:
    reader = labelled_reader()
    batches = [copied(b) for b in reader.iter_batches()]
    engine = new_engine()
    on_batches = engine.evaluate(batches)
    assert engine.evaluate(reader_dataset(reader)) == on_batches
    got = dict(engine.predict(reader_dataset(reader), reader.steps(), reader.lengths))
    want = dict(engine.predict(batches, reader.steps(), reader.lengths))
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_a_store_on_s3_streams(s3_store_url: str, s3_storage_options: dict[str, Any]) -> None:
    repo = SequenceRepository(open_store(s3_store_url, s3_storage_options))
    frames = random_frames(LENGTHS, (4,), "float32")
    labels = [np.tanh(f[:, :1]).astype(np.float32) for f in frames]
    ids = store_all(repo, frames, 4, labels)
    reader = StepReader(repo, ids, lanes=LANES, segment_length=SEGMENT, with_labels=True)
    want = [copied(b) for b in reader.iter_batches()]
    assert_batches_equal(dataset_batches(reader_dataset(reader)), want)
    memory = StepReader.from_arrays(
        frames, labels, lanes=LANES, segment_length=SEGMENT, chunk_length=4
    )
    a, b = new_engine(), new_engine()
    got = [out for _, out in a.stream(reader, "predict")]
    expected = [out for _, out in b.stream(memory, "predict")]
    for x, y in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, y)
