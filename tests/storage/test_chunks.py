"""Direct chunk encoding and decoding: the same bytes as zarr, key by key."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from segflow.errors import StoreError
from storage import open_store
from storage.chunks import DirectChunks
from storage.sequences import SequenceMeta, SequenceRepository

CASES = [
    # (compression, dtype, frame shape)
    ("none", "uint8", (6, 5, 3)),  # uncompressed video frames: crc32c appended, no copy
    ("lz4", "uint8", (6, 5, 3)),  # blosc lz4 + bitshuffle, the default for integer frames
    ("zstd", "int16", (7,)),  # another compressor and a multi-byte integer
    ("none", "float32", (9,)),  # feature vectors, the default for floats
]


def _array(
    repo: SequenceRepository,
    sequence_id: str,
    compression: str,
    dtype: str,
    shape: tuple[int, ...],
    length: int,
) -> zarr.Array:
    group = repo.create(
        sequence_id,
        frame_shape=shape,
        dtype=dtype,
        meta=SequenceMeta(segment_length=4),
        compression=compression,
    )
    array = group["frames"].with_config({"write_empty_chunks": True})
    array.resize((length, *shape))
    return array


def _frames(dtype: str, shape: tuple[int, ...], length: int) -> np.ndarray:
    values = np.random.default_rng(0).integers(0, 100, size=(length, *shape))
    frames = values.astype(dtype)
    frames[4:8] = 0  # an all-zero chunk is written too (write_empty_chunks)
    return frames


@pytest.mark.parametrize(("compression", "dtype", "shape"), CASES)
def test_written_chunks_are_the_bytes_zarr_writes(tmp_path, compression, dtype, shape) -> None:
    repo = SequenceRepository(open_store(tmp_path))
    frames = _frames(dtype, shape, 12)
    by_zarr = _array(repo, "zarr", compression, dtype, shape, 12)
    for start in range(0, 12, 4):
        by_zarr[start : start + 4] = frames[start : start + 4]
    direct_array = _array(repo, "direct", compression, dtype, shape, 12)
    direct = DirectChunks.for_array(direct_array)
    assert direct is not None
    for index in range(3):
        direct.write(repo.store, index, frames[4 * index : 4 * index + 4])

    zarr_keys = repo.store.list("sequences/zarr/frames")
    assert [k.replace("/zarr/", "/direct/") for k in zarr_keys] == repo.store.list(
        "sequences/direct/frames"
    )
    for key in zarr_keys:
        assert repo.store.read_bytes(key) == repo.store.read_bytes(
            key.replace("/zarr/", "/direct/")
        ), key
    np.testing.assert_array_equal(repo.frames("direct", require_complete=False)[:], frames)
    for index in range(3):
        np.testing.assert_array_equal(
            direct.read(repo.store, index), frames[4 * index : 4 * index + 4]
        )


def test_unwritten_chunk_reads_as_fill_value(tmp_path) -> None:
    repo = SequenceRepository(open_store(tmp_path))
    direct = DirectChunks.for_array(_array(repo, "s", "none", "uint8", (3,), 8))
    assert direct is not None
    np.testing.assert_array_equal(direct.read(repo.store, 1), np.zeros((4, 3), np.uint8))


def test_write_refuses_rows_that_are_not_one_chunk(tmp_path) -> None:
    repo = SequenceRepository(open_store(tmp_path))
    direct = DirectChunks.for_array(_array(repo, "s", "none", "uint8", (3,), 8))
    assert direct is not None
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*chunk 0.*got \(3, 3\)"):
        direct.write(repo.store, 0, np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"dtype uint8.*float64"):
        direct.write(repo.store, 0, np.zeros((4, 3)))


def test_corrupt_chunk_is_named(tmp_path) -> None:
    repo = SequenceRepository(open_store(tmp_path))
    direct = DirectChunks.for_array(_array(repo, "s", "none", "uint8", (3,), 8))
    assert direct is not None
    direct.write(repo.store, 1, np.ones((4, 3), np.uint8))
    key = direct.key(1)
    data = bytearray(repo.store.read_bytes(key))
    data[0] ^= 0xFF
    repo.store.write_bytes(key, bytes(data))
    with pytest.raises(StoreError, match=r"c\.1\.0"):
        direct.read(repo.store, 1)


def test_arrays_chunked_across_frames_are_left_to_zarr(tmp_path) -> None:
    group = zarr.open_group(str(tmp_path), mode="w")
    array = group.create_array("a", shape=(8, 4), chunks=(4, 2), dtype="uint8")
    assert DirectChunks.for_array(array) is None


def test_rows_in_another_byte_order_are_stored_in_the_arrays(tmp_path) -> None:
    repo = SequenceRepository(open_store(tmp_path))
    direct = DirectChunks.for_array(_array(repo, "s", "none", "float32", (3,), 4))
    assert direct is not None
    rows = np.arange(12, dtype=">f4").reshape(4, 3)
    direct.write(repo.store, 0, rows)
    np.testing.assert_array_equal(direct.read(repo.store, 0), rows)
    assert direct.read(repo.store, 0).dtype == np.float32


def test_truncated_uncompressed_chunk_is_named(tmp_path) -> None:
    repo = SequenceRepository(open_store(tmp_path))
    direct = DirectChunks.for_array(_array(repo, "s", "none", "uint8", (3,), 8))
    assert direct is not None
    key = direct.key(0)
    repo.store.write_bytes(key, b"\x00" * 5)  # a chunk cut short, checksum and all
    with pytest.raises(StoreError, match=r"c\.0\.0"):
        direct.read(repo.store, 0)
