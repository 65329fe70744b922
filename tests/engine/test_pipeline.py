"""Tests of the input pipeline against a brute-force slicing of the stored arrays."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.engine.pipeline import StepReader, ZarrChunks, make_dataset
from segflow.errors import ConfigError, IncompleteSequenceError, StoreError
from storage.local import LocalStore
from storage.sequences import SequenceMeta, SequenceRepository
from tests.engine.batch_helpers import (
    assert_batches_equal,
    copied,
    expected_batches,
    random_frames,
)
from tests.engine.store_helpers import store_all, write_sequence


@pytest.fixture
def repo(tmp_path: Path) -> SequenceRepository:
    return SequenceRepository(LocalStore(tmp_path / "store"))


# (lengths, lanes, segment_length, stored chunk length)
LAYOUTS = [
    ([7, 3, 12, 1], 2, 3, 5),  # segment shorter than the chunk and not dividing it
    ([7, 3, 12, 1], 2, 5, 2),  # segment longer than the chunk: several chunks per slot
    ([8, 8, 16], 2, 4, 4),  # segment == chunk, lengths multiple of both
    ([9, 0, 5], 2, 4, 3),  # a zero-length sequence is never scheduled
    ([6, 2], 4, 4, 3),  # more lanes than sequences: idle lanes all the way
    ([10], 1, 7, 10),  # one chunk per sequence, a segment straddling nothing
]


@pytest.mark.parametrize(("lengths", "lanes", "segment_length", "chunk"), LAYOUTS)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_batches_equal_brute_force_slicing(
    repo: SequenceRepository,
    lengths: list[int],
    lanes: int,
    segment_length: int,
    chunk: int,
    dtype: str,
) -> None:
    frames = random_frames(lengths, (4, 5, 3) if dtype == "uint8" else (6,), dtype)
    rng = np.random.default_rng(1)
    labels = [rng.standard_normal((n, 2)) for n in lengths]  # float64, cast to float32
    ids = store_all(repo, frames, chunk, labels)
    reader = StepReader(repo, ids, lanes=lanes, segment_length=segment_length, with_labels=True)
    want = expected_batches(frames, labels, lanes, segment_length)

    assert reader.num_steps == len(want)
    assert_batches_equal(list(reader.iter_batches(readahead=2)), want)
    assert_batches_equal(list(reader.iter_batches(readahead=0, workers=1)), want)
    assert_batches_equal(list(reader.iter_batches(workers=0)), want)  # read inline
    assert_batches_equal([reader.read_step(s) for s in reader.steps()], want)
    # Consumed one at a time, the batch buffers are recycled: stale data must not leak.
    assert_batches_equal([copied(b) for b in reader.iter_batches()], want)
    assert_batches_equal([copied(reader.read_step(s)) for s in reader.steps()], want)


def test_without_labels_has_no_labels_key(repo: SequenceRepository) -> None:
    frames = random_frames([5, 4], (3,), "float32")
    ids = store_all(repo, frames, 2, [f[:, :1] for f in frames])
    reader = StepReader(repo, ids, lanes=2, segment_length=3)
    assert_batches_equal(list(reader.iter_batches()), expected_batches(frames, None, 2, 3))


def test_per_sequence_labels_are_repeated_on_real_frames(repo: SequenceRepository) -> None:
    frames = random_frames([5, 2, 4], (2, 2, 3), "uint8")
    labels = [np.array([[i, 10 * i]], dtype=np.int32) for i in range(1, 4)]
    ids = store_all(repo, frames, 2, labels, label_kind="per_sequence")
    reader = StepReader(repo, ids, lanes=2, segment_length=3, with_labels=True)
    got = list(reader.iter_batches())
    assert_batches_equal(got, expected_batches(frames, labels, 2, 3, per_sequence=True))
    assert got[0]["labels"][1, 2].tolist() == [0.0, 0.0]  # padding stays zero


def test_order_is_deterministic_and_start_step_resumes_the_suffix(repo: SequenceRepository) -> None:
    frames = random_frames([9, 4, 7, 3, 5], (2, 3), "uint8")
    ids = store_all(repo, frames, 4)
    reader = StepReader(repo, ids, lanes=2, segment_length=3)
    full = list(reader.iter_batches())
    assert_batches_equal(list(reader.iter_batches()), full)
    for start in (1, 4, reader.num_steps - 1, reader.num_steps):
        assert_batches_equal(list(reader.iter_batches(start)), full[start:])
    with pytest.raises(ConfigError, match="start_step"):
        reader.iter_batches(reader.num_steps + 1)


def test_each_chunk_is_read_once(repo: SequenceRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = random_frames([23, 11, 17], (3,), "float32")
    ids = store_all(repo, frames, 8, [f[:, :1] for f in frames])
    reads: Counter[tuple[int, int]] = Counter()
    original = ZarrChunks.read_chunk

    def counting(self: ZarrChunks, index: int) -> np.ndarray:
        reads[(id(self), index)] += 1
        return original(self, index)

    monkeypatch.setattr(ZarrChunks, "read_chunk", counting)
    reader = StepReader(repo, ids, lanes=2, segment_length=3, with_labels=True)
    for readahead in (0, 3):
        reads.clear()
        list(reader.iter_batches(readahead=readahead))
        # 3 + 2 + 3 frame chunks and as many label chunks, each read exactly once
        assert sorted(reads.values()) == [1] * 16


def test_readahead_is_bounded(repo: SequenceRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = random_frames([40, 40], (2,), "uint8")
    ids = store_all(repo, frames, 2)
    reads: list[int] = []
    original = ZarrChunks.read_chunk
    monkeypatch.setattr(ZarrChunks, "read_chunk", lambda s, i: reads.append(i) or original(s, i))
    reader = StepReader(repo, ids, lanes=2, segment_length=2)
    batches = reader.iter_batches(readahead=1, workers=1)
    next(batches)
    # steps 0, 1 (readahead) and 2 (requested before step 0 is handed out): 3 chunks per lane
    assert len(reads) <= 6
    batches.close()


def test_closing_early_stops_the_reader_threads(repo: SequenceRepository) -> None:
    frames = random_frames([30, 30, 30], (2,), "uint8")
    reader = StepReader(repo, store_all(repo, frames, 2), lanes=2, segment_length=2)
    batches = reader.iter_batches(readahead=4)
    next(batches)
    batches.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("segflow-read")]


def test_incomplete_sequence_is_refused(repo: SequenceRepository) -> None:
    frames = random_frames([5, 5], (2,), "uint8")
    store_all(repo, frames[:1], 2)
    write_sequence(repo, "crashed", frames[1], chunk_length=2, complete=False)
    with pytest.raises(IncompleteSequenceError, match="crashed"):
        StepReader(repo, ["seq-0", "crashed"], lanes=2, segment_length=2)
    with pytest.raises(IncompleteSequenceError, match="crashed"):
        make_dataset(repo, ["seq-0", "crashed"], lanes=2, segment_length=2, with_labels=False)


def test_label_dtypes_may_differ_but_not_label_shapes(repo: SequenceRepository) -> None:
    frames = np.ones((4, 2), np.uint8)
    write_sequence(repo, "a", frames, chunk_length=2, labels=np.ones((4, 1), np.float32))
    write_sequence(repo, "b", frames, chunk_length=2, labels=np.full((4, 1), 3, np.int64))
    write_sequence(repo, "c", frames, chunk_length=2, labels=np.ones((4, 2), np.float32))
    reader = StepReader(repo, ["a", "b"], lanes=2, segment_length=4, with_labels=True)
    assert reader.read_step(next(reader.steps()))["labels"][:, 0, 0].tolist() == [1.0, 3.0]
    with pytest.raises(ConfigError, match="labels rows of shape"):
        StepReader(repo, ["a", "c"], lanes=2, segment_length=4, with_labels=True)


@pytest.mark.parametrize(
    ("second", "with_labels", "message"),
    [
        (np.zeros((4, 3), np.uint8), False, "row shape|rows of shape"),  # other frame shape
        (np.zeros((4, 2), np.float32), False, "dtype"),  # other dtype
        (np.zeros((4, 2), np.uint8), True, "no labels"),  # labels asked, none stored
    ],
)
def test_inconsistent_sequences_are_refused(
    repo: SequenceRepository, second: np.ndarray, with_labels: bool, message: str
) -> None:
    first = np.ones((4, 2), np.uint8)
    write_sequence(repo, "a", first, chunk_length=2, labels=np.ones((4, 1), np.float32))
    write_sequence(repo, "b", second, chunk_length=2)
    with pytest.raises(ConfigError, match=message):
        StepReader(repo, ["a", "b"], lanes=1, segment_length=2, with_labels=with_labels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lanes": 0, "segment_length": 2}, "lanes"),
        ({"lanes": 1, "segment_length": 0}, "segment_length"),
    ],
)
def test_invalid_arguments(repo: SequenceRepository, kwargs: dict[str, int], message: str) -> None:
    ids = store_all(repo, random_frames([3], (2,), "uint8"), 2)
    with pytest.raises(ConfigError, match=message):
        StepReader(repo, ids, **kwargs)
    with pytest.raises(ConfigError, match="empty"):
        StepReader(repo, [], lanes=1, segment_length=1)
    reader = StepReader(repo, ids, lanes=1, segment_length=1)
    with pytest.raises(ConfigError, match="readahead"):
        reader.iter_batches(readahead=-1)


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_direct_chunk_decoding_equals_zarr(repo: SequenceRepository, compression: str) -> None:
    frames = random_frames([11], (3, 4), "float32")[0]
    frames[4:8] = 0  # an all-zero chunk: zarr writes no object for it
    write_sequence(repo, "s", frames, chunk_length=4, compression=compression)
    array = repo.frames("s")
    chunks = ZarrChunks(repo.store, array, 11)
    assert chunks.fast
    for index in range(3):
        np.testing.assert_array_equal(chunks.read_chunk(index), array[4 * index : 4 * index + 4])


def test_arrays_chunked_across_frames_are_read_through_zarr(repo: SequenceRepository) -> None:
    group = repo.create("s", frame_shape=(4,), dtype="uint8", meta=SequenceMeta(segment_length=3))
    array = group.create_array("split", shape=(6, 4), chunks=(3, 2), dtype="uint8", fill_value=0)
    data = np.arange(24, dtype=np.uint8).reshape(6, 4)
    array[:] = data
    chunks = ZarrChunks(repo.store, array, 5)
    assert not chunks.fast
    np.testing.assert_array_equal(chunks.read_chunk(1), data[3:5])


def test_corrupt_chunk_raises_store_error_through_the_reader(repo: SequenceRepository) -> None:
    ids = store_all(repo, random_frames([6, 6], (8,), "uint8"), 3)
    chunk = Path(repo.store.url) / "sequences" / "seq-1" / "frames" / "c.1.0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    reader = StepReader(repo, ids, lanes=2, segment_length=3)
    with pytest.raises(StoreError, match="seq-1"):
        list(reader.iter_batches())


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=6),
    lanes=st.integers(1, 4),
    segment_length=st.integers(1, 6),
    chunk=st.integers(1, 7),
    readahead=st.integers(0, 3),
)
def test_in_memory_reader_matches_slicing(
    lengths: list[int], lanes: int, segment_length: int, chunk: int, readahead: int
) -> None:
    frames = random_frames(lengths, (2,), "uint8")
    labels = [f.astype(np.float32) * 2 for f in frames]
    reader = StepReader.from_arrays(
        frames, labels, lanes=lanes, segment_length=segment_length, chunk_length=chunk
    )
    want = expected_batches(frames, labels, lanes, segment_length)
    batches = reader.iter_batches(readahead=readahead, workers=2)
    assert_batches_equal([copied(b) for b in batches], want)
    inline = reader.iter_batches(readahead=readahead, workers=0)
    assert_batches_equal([copied(b) for b in inline], want)


@pytest.mark.parametrize(("compression", "inline"), [("none", True), ("lz4", False)])
def test_cheap_chunk_reads_are_done_inline_by_default(
    repo: SequenceRepository, compression: str, inline: bool
) -> None:
    frames = random_frames([9, 4], (6,), "float32")
    ids = [f"s{i}" for i in range(len(frames))]
    for sid, f in zip(ids, frames, strict=True):
        write_sequence(repo, sid, f, chunk_length=4, compression=compression)
    reader = StepReader(repo, ids, lanes=2, segment_length=3)
    assert reader.cheap_reads is inline  # uncompressed on a local disk: no reader threads
    before = {t.name for t in threading.enumerate()}
    batches = reader.iter_batches()
    next(batches)
    started = {t.name for t in threading.enumerate()} - before
    assert any(name.startswith("segflow-read") for name in started) is not inline
    batches.close()


def test_make_dataset_yields_the_batches_with_fixed_shapes(repo: SequenceRepository) -> None:
    import tensorflow as tf

    frames = random_frames([7, 3, 5], (4, 4, 3), "uint8")
    labels = [f[:, 0, 0, :2].astype(np.float32) for f in frames]
    ids = store_all(repo, frames, 4, labels)
    dataset = make_dataset(repo, ids, lanes=2, segment_length=3, with_labels=True, start_step=1)
    spec = dataset.element_spec
    assert spec["frames"].shape == (2, 3, 4, 4, 3) and spec["frames"].dtype == tf.uint8
    assert spec["labels"].shape == (2, 3, 2) and spec["labels"].dtype == tf.float32
    assert spec["mask"].dtype == tf.bool and spec["reset"].shape == (2,)
    want = expected_batches(frames, labels, 2, 3)[1:]
    assert int(dataset.cardinality()) == len(want)
    # Tensors may share the reader's memory: holding them all must keep them intact.
    held = list(dataset)
    assert_batches_equal([{k: v.numpy() for k, v in batch.items()} for batch in held], want)
    # Dropped one by one, their memory is recycled; a new pass gives the same batches.
    got = [{k: v.numpy().copy() for k, v in batch.items()} for batch in dataset]
    assert_batches_equal(got, want)


def test_from_arrays_checks_its_arguments() -> None:
    frames = [np.zeros((4, 2), np.uint8), np.zeros((3, 2), np.uint8)]
    with pytest.raises(ConfigError, match="label rows"):
        labels = [np.zeros((4, 1)), np.zeros((2, 1))]
        StepReader.from_arrays(frames, labels, lanes=1, segment_length=2)
    with pytest.raises(ConfigError, match="chunk_length"):
        StepReader.from_arrays(frames, lanes=1, segment_length=2, chunk_length=0)
    reader = StepReader.from_arrays(
        frames,
        [np.ones((1, 1)), np.full((1, 1), 2.0)],
        lanes=1,
        segment_length=2,
        per_sequence_labels=True,
    )
    labels = [b["labels"][0, :, 0].tolist() for b in reader.iter_batches()]
    assert labels == [[1.0, 1.0], [1.0, 1.0], [2.0, 2.0], [2.0, 0.0]]


def test_step_reader_does_not_import_tensorflow() -> None:
    code = "import sys, segflow.engine.pipeline; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
