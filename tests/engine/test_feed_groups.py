"""The dataset serves groups of steps (one ``numpy_function`` call per group, then ``unbatch``).

Oracle: the reader's own per-step assembly (``iter_batches``), on sequences of mixed lengths,
noisy frames, labels shorter than the frames (a forecast horizon) and a store with blosc chunks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from segflow.engine.chunks import ArrayChunks, SequenceChunks
from segflow.engine.dataset import StepFeed
from segflow.engine.reader import StepReader
from storage.sequences import SequenceRepository
from storage.urls import open_store
from tests.engine.batch_helpers import assert_batches_equal, copied, random_frames
from tests.engine.store_helpers import store_all

LANES, SEGMENT = 3, 4
LENGTHS = [17, 5, 9, 12, 3, 8]


def shifted_reader() -> StepReader:
    """Noisy float frames; labels two rows short (a horizon of 2), chunks of 5 rows."""
    frames = random_frames(LENGTHS, (3,), "float32")
    sequences = [
        SequenceChunks(str(i), ArrayChunks(f, 5), ArrayChunks(np.tanh(f[2:, :2]), 5))
        for i, f in enumerate(frames)
    ]
    return StepReader.from_sources(sequences, lanes=LANES, segment_length=SEGMENT, with_labels=True)


def as_numpy(dataset: tf.data.Dataset) -> list[dict[str, np.ndarray]]:
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset]


@pytest.mark.parametrize("group_steps", [1, 3, 8])  # one step, groups cut mid-sequence, all
@pytest.mark.parametrize("start_step", [0, 2])
def test_grouped_dataset_equals_the_readers_batches(group_steps: int, start_step: int) -> None:
    reader = shifted_reader()
    want = [copied(b) for b in reader.iter_batches(start_step)]
    with StepFeed(reader, start_step=start_step, group_steps=group_steps) as feed:
        dataset = feed.dataset()
        assert int(dataset.cardinality()) == len(want)
        spec = dataset.element_spec
        assert spec["frames"].shape == (LANES, SEGMENT, 3)
        assert spec["labels"].shape == (LANES, SEGMENT, 2)
        assert_batches_equal(as_numpy(dataset), want)
        assert_batches_equal(as_numpy(dataset.repeat(2)), want + want)  # passes restart


def test_read_group_restarts_on_any_group() -> None:
    reader = shifted_reader()
    want = [copied(b) for b in reader.iter_batches()]
    with StepFeed(reader, group_steps=2) as feed:
        starts = reader.group_starts(0, 2)
        names = ("frames", "frame_index", "valid", "reset", "ends", "labels", "label_index")
        for group in (2, 3, 0, 1, 1, len(starts) - 2):  # out of order: restarts, same batches
            parts = dict(zip(names, feed.read_group(group), strict=True))
            got = [
                {
                    "frames": parts["frames"][parts["frame_index"][k]],
                    "labels": parts["labels"][parts["label_index"][k]],
                    "mask": np.arange(SEGMENT) < parts["valid"][k][:, None],
                    "reset": parts["reset"][k],
                    "ends": parts["ends"][k],
                }
                for k in range(starts[group + 1] - starts[group])
            ]
            assert_batches_equal(got, want[starts[group] : starts[group + 1]])


def test_grouped_dataset_from_a_compressed_store(tmp_path: Path) -> None:
    repo = SequenceRepository(open_store(tmp_path / "store"))
    frames = random_frames(LENGTHS, (6, 5, 3), "uint8")
    ids = store_all(repo, frames, 4, compression="lz4")
    reader = StepReader(repo, ids, lanes=LANES, segment_length=SEGMENT)
    want = [copied(b) for b in reader.iter_batches(1)]
    with StepFeed(reader, start_step=1, group_steps=4) as feed:
        held = list(feed.dataset())  # held together: no batch's memory is reused
        assert_batches_equal([{k: v.numpy() for k, v in b.items()} for b in held], want)
