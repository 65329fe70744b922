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

from segflow.engine.dataset import StepFeed, StepIterators, make_dataset, reader_dataset
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
    with StepFeed(reader, group_steps=2) as feed:
        for index in (3, 4, 0, 1, 1, 2):  # out of order: restarts, same batches
            parts = dict(
                zip(
                    ("frames", "frame_index", "valid", "reset", "ends", "labels", "label_index"),
                    feed.read(index),
                    strict=True,
                )
            )
            got = {
                "frames": parts["frames"][parts["frame_index"]],
                "labels": parts["labels"][parts["label_index"]],
                "mask": np.arange(SEGMENT) < parts["valid"][:, None],
                "reset": parts["reset"],
                "ends": parts["ends"],
            }
            assert_batches_equal([got], [want[index]])


@pytest.mark.parametrize("group_steps", [1, 3, 8])
def test_groups_equal_the_batches_whatever_the_grouping(group_steps: int) -> None:
    reader = labelled_reader(shorter_labels=True)
    want = [copied(b) for b in reader.iter_batches()]
    for start in (0, 2):
        got = []
        for group in reader.iter_groups(start, group_steps=group_steps):
            for k in range(group.steps):
                assert group.labels is not None and group.label_index is not None
                got.append(
                    {
                        "frames": group.frames[group.frame_index[k]],
                        "labels": group.labels[group.label_index[k]],
                        "mask": np.arange(SEGMENT) < group.valid[k][:, None],
                        "reset": group.reset[k].copy(),
                        "ends": group.ends[k].copy(),
                    }
                )
        assert_batches_equal(got, want[start:])


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


def random_reader(rng: np.random.Generator) -> StepReader:
    """Sequences of random lengths (some empty), chunkings, label kinds and label lengths."""
    from segflow.engine.chunks import ArrayChunks, SequenceChunks

    with_labels = bool(rng.integers(0, 2))
    sequences = []
    for i, length in enumerate(rng.integers(0, 20, size=int(rng.integers(1, 8)))):
        frames = ArrayChunks(rng.standard_normal((length, 2)), int(rng.integers(1, 7)))
        labels, whole = None, with_labels and rng.integers(0, 3) == 0
        if whole:  # one label for the whole sequence
            labels = ArrayChunks(rng.standard_normal((1, 3)), 1)
        elif with_labels:  # maybe fewer label rows than frames (a horizon)
            rows = max(int(length) - int(rng.integers(0, 4)), 0)
            labels = ArrayChunks(rng.standard_normal((rows, 3)), int(rng.integers(1, 7)))
        sequences.append(SequenceChunks(str(i), frames, labels, bool(whole)))
    if not any(s.length for s in sequences):
        sequences.append(
            SequenceChunks(
                "x",
                ArrayChunks(np.ones((3, 2)), 2),
                ArrayChunks(np.ones((3, 3)), 2) if with_labels else None,
            )
        )
    lanes, length = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    return StepReader.from_sources(
        sequences, lanes=lanes, segment_length=length, with_labels=with_labels
    )


@pytest.mark.parametrize("seed", range(40))
def test_group_index_against_the_readers_own_assembly(seed: int) -> None:
    # The reader's per-lane assembly (iter_batches) is the brute-force oracle.
    rng = np.random.default_rng(seed)
    reader = random_reader(rng)
    want = [copied(b) for b in reader.iter_batches()]
    size = int(rng.integers(1, 5))
    start = int(rng.integers(0, reader.num_steps))
    got = []
    for group in reader.iter_groups(start, group_steps=size):
        for k in range(group.steps):
            batch = {
                "frames": group.frames[group.frame_index[k]],
                "mask": np.arange(reader.segment_length) < group.valid[k][:, None],
                "reset": group.reset[k].copy(),
                "ends": group.ends[k].copy(),
            }
            if group.labels is not None and group.label_index is not None:
                batch["labels"] = group.labels[group.label_index[k]]
            got.append(batch)
    assert_batches_equal(got, want[start:])


def test_a_finished_pass_leaves_its_iterator_for_the_next() -> None:
    reader = labelled_reader()
    want = [copied(b) for b in reader.iter_batches(1)]
    iterators = StepIterators()
    kept = []
    for _ in range(2):
        with iterators.open(reader, 1) as iterator:
            kept.append(iterator)
            got = [next(iterator) for _ in want]
        assert_batches_equal([{k: v.numpy() for k, v in b.items()} for b in got], want)
    assert kept[0] is kept[1]
    with pytest.raises(KeyError), iterators.open(reader, 1) as iterator:
        next(iterator)
        raise KeyError  # a pass left part-way: its iterator is dropped
    with iterators.open(reader, 1) as iterator:
        assert iterator is not kept[0]
        got = [next(iterator) for _ in want]
    assert_batches_equal([{k: v.numpy() for k, v in b.items()} for b in got], want)
    iterators.clear()


def test_stream_passes_repeat_exactly() -> None:
    reader = labelled_reader()
    engine = new_engine()
    passes = []
    for _ in range(3):
        engine.reset_state()
        passes.append([out for _, out in engine.stream(reader, "predict")])
    for other in passes[1:]:
        for a, b in zip(passes[0], other, strict=True):
            np.testing.assert_array_equal(a, b)
