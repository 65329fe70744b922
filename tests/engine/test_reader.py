"""Tests of the reader's parts: chunk sources, the chunk-key plan, and the ways to build one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.engine import buffers, chunks, dataset, pipeline, reader, readplan, stepindex
from segflow.engine.pipeline import (
    ArrayChunks,
    OffsetChunks,
    SequenceChunks,
    StepReader,
    ZarrChunks,
)
from segflow.engine.readplan import FRAMES, LABELS, Chunking, chunk_keys, step_chunk_keys
from segflow.engine.scheduler import LaneSlot, Step, schedule
from segflow.errors import ConfigError
from storage.local import LocalStore
from storage.sequences import Compression, SequenceRepository
from tests.engine.batch_helpers import assert_batches_equal, copied, expected_batches, random_frames
from tests.engine.store_helpers import store_all, write_sequence


@pytest.fixture
def repo(tmp_path: Path) -> SequenceRepository:
    return SequenceRepository(LocalStore(tmp_path / "store"))


# -- the public face -------------------------------------------------------------------------


def test_pipeline_exports_the_public_names_of_its_parts() -> None:
    assert sorted(pipeline.__all__) == [
        "ArrayChunks",
        "ChunkSource",
        "OffsetChunks",
        "SequenceChunks",
        "StepReader",
        "ZarrChunks",
        "make_dataset",
        "reader_dataset",
    ]
    owners = {name: module for module in (chunks, reader, dataset) for name in module.__all__}
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is getattr(owners[name], name), name
    for module in (buffers, chunks, dataset, reader, readplan, stepindex):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__


# -- OffsetChunks ----------------------------------------------------------------------------


# (base length, base chunk length, offset)
OFFSETS = [
    (10, 4, 6),  # a view inside the last base chunk
    (10, 4, 1),  # every view chunk straddles two base chunks
    (10, 4, 4),  # offset on a chunk boundary: view chunks are base chunks
    (9, 3, 0),  # no offset at all
    (9, 3, 9),  # an empty view
    (11, 5, 7),  # the last view chunk is short and inside one base chunk
]


def view_chunks(view: OffsetChunks) -> list[np.ndarray]:
    return [view.read_chunk(c) for c in range(-(-view.length // view.chunk_length))]


@pytest.mark.parametrize(("length", "chunk", "offset"), OFFSETS)
def test_offset_view_equals_the_slice(length: int, chunk: int, offset: int) -> None:
    array = np.arange(length * 2).reshape(length, 2)
    view = OffsetChunks(ArrayChunks(array, chunk), offset)
    assert (view.length, view.chunk_length, view.row_shape) == (length - offset, chunk, (2,))
    got = view_chunks(view)
    assert all(len(c) == chunk for c in got[:-1])  # every chunk but the last is whole
    joined = np.concatenate(got) if got else np.empty((0, 2), array.dtype)
    np.testing.assert_array_equal(joined, array[offset:])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), length=st.integers(1, 30), chunk=st.integers(1, 8))
def test_offset_view_of_a_view_equals_the_slice(
    data: st.DataObject, length: int, chunk: int
) -> None:
    array = np.arange(length)
    first = data.draw(st.integers(0, length), label="first")
    second = data.draw(st.integers(0, length - first), label="second")
    view = OffsetChunks(OffsetChunks(ArrayChunks(array, chunk), first), second)
    got = view_chunks(view)
    joined = np.concatenate(got) if got else array[:0]
    np.testing.assert_array_equal(joined, array[first + second :])


def test_offset_view_of_a_stored_array_equals_the_slice(repo: SequenceRepository) -> None:
    frames = random_frames([13], (3,), "float32")[0]
    write_sequence(repo, "s", frames, chunk_length=4, compression="lz4")
    view = OffsetChunks(ZarrChunks(repo.store, repo.frames("s"), 13), 5)
    assert not view.cheap_reads  # compressed: inherited from the base
    np.testing.assert_array_equal(np.concatenate(view_chunks(view)), frames[5:])


@pytest.mark.parametrize("offset", [-1, 11])
def test_offset_outside_the_base_is_refused(offset: int) -> None:
    with pytest.raises(ConfigError, match=r"argument `offset`.*\[0, 10\]"):
        OffsetChunks(ArrayChunks(np.arange(10), 4), offset)


# -- the chunk-key plan ----------------------------------------------------------------------


def slot(sequence: int | None, start: int, stop: int) -> LaneSlot:
    return LaneSlot(sequence, start, stop, reset=start == 0)


# (slots, chunking per sequence, with_labels, expected keys)
PLANS = [
    # one lane inside one chunk
    ([slot(0, 0, 3)], [Chunking(8, 4)], False, [(0, FRAMES, 0)]),
    # a segment straddling two chunks
    ([slot(0, 3, 6)], [Chunking(8, 4)], False, [(0, FRAMES, 0), (0, FRAMES, 1)]),
    # a segment longer than a chunk covers every chunk in between
    ([slot(0, 1, 9)], [Chunking(9, 3)], False, [(0, FRAMES, c) for c in range(3)]),
    # idle lanes need nothing
    ([slot(None, 0, 0), slot(0, 4, 5)], [Chunking(5, 4)], False, [(0, FRAMES, 1)]),
    # labels with their own chunk length, after the frames of the same lane
    (
        [slot(0, 2, 5), slot(1, 0, 3)],
        [Chunking(5, 4, labels_chunk=2), Chunking(3, 3, labels_chunk=3)],
        True,
        [
            (0, FRAMES, 0),
            (0, FRAMES, 1),
            (0, LABELS, 1),
            (0, LABELS, 2),
            (1, FRAMES, 0),
            (1, LABELS, 0),
        ],
    ),
    # a per-sequence label is chunk 0, whatever the frames
    (
        [slot(0, 6, 9)],
        [Chunking(9, 3, labels_chunk=1, per_sequence_labels=True)],
        True,
        [(0, FRAMES, 2), (0, LABELS, 0)],
    ),
    # labels present but not asked for are not read
    ([slot(0, 0, 2)], [Chunking(2, 2, labels_chunk=2)], False, [(0, FRAMES, 0)]),
]


@pytest.mark.parametrize(("slots", "chunking", "with_labels", "want"), PLANS)
def test_step_chunk_keys(
    slots: list[LaneSlot], chunking: list[Chunking], with_labels: bool, want: list[tuple]
) -> None:
    step = Step(index=0, slots=tuple(slots))
    assert step_chunk_keys(step, chunking, with_labels=with_labels) == want


def test_a_key_shared_by_two_lanes_is_planned_once() -> None:
    # Two lanes never share a sequence in a schedule, but the plan must not rely on it.
    step = Step(0, (slot(0, 0, 2), slot(0, 2, 4)))
    assert step_chunk_keys(step, [Chunking(4, 4)]) == [(0, FRAMES, 0)]


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 20), min_size=1, max_size=5),
    lanes=st.integers(1, 3),
    segment_length=st.integers(1, 7),
    chunk=st.integers(1, 6),
)
def test_step_chunk_keys_cover_exactly_the_rows_of_the_step(
    lengths: list[int], lanes: int, segment_length: int, chunk: int
) -> None:
    chunking = [Chunking(n, chunk) for n in lengths]
    for step in schedule(lengths, lanes, segment_length):
        rows = {
            (s.sequence, row)
            for s in step.slots
            if s.sequence is not None
            for row in range(s.start, s.stop)
        }
        brute = {(sequence, FRAMES, row // chunk) for sequence, row in rows}
        keys = step_chunk_keys(step, chunking)
        assert len(keys) == len(set(keys)) and set(keys) == brute


def test_chunk_keys_of_a_row_range() -> None:
    assert chunk_keys(2, LABELS, chunk_length=5, start=5, stop=10) == [(2, LABELS, 1)]
    straddling = chunk_keys(0, FRAMES, chunk_length=5, start=4, stop=6)
    assert straddling == [(0, FRAMES, 0), (0, FRAMES, 1)]


def test_the_reader_reads_exactly_the_planned_keys(repo: SequenceRepository) -> None:
    frames = random_frames([7, 4, 9], (2,), "uint8")
    labels = [f[:, :1].astype(np.float32) for f in frames]
    ids = store_all(repo, frames, 3, labels)
    step_reader = StepReader(repo, ids, lanes=2, segment_length=4, with_labels=True)
    layout = step_reader.layout
    assert layout.chunking == (Chunking(7, 3, 3), Chunking(4, 3, 3), Chunking(9, 3, 3))
    planned = [step_chunk_keys(s, layout.chunking, with_labels=True) for s in step_reader.steps()]
    assert [step_reader.chunk_keys(s) for s in step_reader.steps()] == planned
    # every chunk of every array is planned, and nothing else
    every = {
        (i, field, c)
        for i, n in enumerate([7, 4, 9])
        for field in (FRAMES, LABELS)
        for c in range(-(-n // 3))
    }
    assert {key for keys in planned for key in keys} == every


# -- building a reader -----------------------------------------------------------------------


def test_from_sources_over_mixed_sources_equals_from_arrays(repo: SequenceRepository) -> None:
    frames = random_frames([11, 6, 9], (3,), "float32")
    labels = [np.random.default_rng(i).standard_normal((len(f), 2)) for i, f in enumerate(frames)]
    # stored, resumed at frame 4 (an offset view straddling stored chunks of 3)
    write_sequence(repo, "stored", frames[0], chunk_length=3, labels=labels[0])
    stored, stored_labels = repo.frames("stored"), repo.labels("stored")
    assert stored_labels is not None
    resumed = np.concatenate([np.zeros((4, 3), np.float32), frames[1]])
    write_sequence(repo, "resumed", resumed, chunk_length=3, labels=np.zeros((10, 2)))
    sources = [
        SequenceChunks(
            "stored",
            ZarrChunks(repo.store, stored, 11),
            ZarrChunks(repo.store, stored_labels, 11),
        ),
        SequenceChunks(
            "resumed",
            OffsetChunks(ZarrChunks(repo.store, repo.frames("resumed"), 10), 4),
            ArrayChunks(labels[1], 5),
        ),
        SequenceChunks("memory", ArrayChunks(frames[2], 2), ArrayChunks(labels[2], 4)),
    ]
    mixed = StepReader.from_sources(sources, lanes=2, segment_length=4, with_labels=True)
    arrays = StepReader.from_arrays(frames, labels, lanes=2, segment_length=4, chunk_length=3)
    assert mixed.ids == ("stored", "resumed", "memory") and mixed.lengths == (11, 6, 9)
    assert mixed.batch_spec() == arrays.batch_spec()
    want = [copied(b) for b in arrays.iter_batches()]
    assert_batches_equal(want, expected_batches(frames, labels, 2, 4))
    assert_batches_equal([copied(b) for b in mixed.iter_batches()], want)
    assert_batches_equal([copied(b) for b in mixed.iter_batches(workers=2)], want)
    assert_batches_equal([copied(mixed.read_step(s)) for s in mixed.steps()], want)


def test_the_three_ways_to_build_a_reader_agree(repo: SequenceRepository) -> None:
    frames = random_frames([5, 8], (2,), "uint8")
    ids = store_all(repo, frames, 3)
    opened = [chunks.open_sequence(repo, sid, with_labels=False) for sid in ids]
    readers = [
        StepReader(repo, ids, lanes=2, segment_length=3),
        StepReader.from_sources(opened, lanes=2, segment_length=3),
        StepReader.from_arrays(frames, lanes=2, segment_length=3, chunk_length=3),
    ]
    want = expected_batches(frames, None, 2, 3)
    for built in readers:
        assert built.num_steps == len(want)
        assert_batches_equal([copied(b) for b in built.iter_batches()], want)


def test_a_sequence_id_needs_a_repository() -> None:
    with pytest.raises(ConfigError, match="'cam-1' without a repository"):
        StepReader(None, ["cam-1"], lanes=1, segment_length=2)


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_the_zarr_path_gives_the_batches_of_the_direct_path(
    repo: SequenceRepository, compression: Compression
) -> None:
    frames = random_frames([10, 3, 7], (4, 3), "uint8")
    labels = [np.random.default_rng(i).standard_normal((len(f), 2)) for i, f in enumerate(frames)]
    ids = store_all(repo, frames, 4, labels, compression=compression)
    direct = StepReader(repo, ids, lanes=2, segment_length=3, with_labels=True)
    through_zarr = StepReader(repo, ids, lanes=2, segment_length=3, with_labels=True, direct=False)
    opened = chunks.open_sequence(repo, ids[0], with_labels=True, direct=False)
    assert isinstance(opened.frames, ZarrChunks) and not opened.frames.fast
    assert not through_zarr.cheap_reads  # reads through zarr are never done inline by default
    want = expected_batches(frames, labels, 2, 3)
    assert_batches_equal([copied(b) for b in direct.iter_batches()], want)
    assert_batches_equal([copied(b) for b in through_zarr.iter_batches()], want)
    assert_batches_equal([copied(b) for b in through_zarr.iter_batches(workers=0)], want)
