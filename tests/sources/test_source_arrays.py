"""NpySource, NpzSource and ZarrArraySource: layout, block reads, and invalid arrays."""

from __future__ import annotations

import fsspec
import numpy as np
import pytest
import zarr

from segflow.errors import SourceError, SourceNotFoundError
from segflow.sources.arrays import NpySource, NpzSource, ZarrArraySource
from segflow.synth import synth_array


def _frames(length: int = 50, shape=(3, 2), dtype=np.float32) -> np.ndarray:
    return np.arange(length * int(np.prod(shape))).reshape(length, *shape).astype(dtype)


def _read(source, block_frames: int, start: int = 0):
    blocks = list(source.blocks(block_frames, start))
    assert all(len(b.frames) == block_frames for b in blocks[:-1])
    assert [b.start for b in blocks] == list(
        range(start, start + block_frames * len(blocks), block_frames)
    )
    return blocks


def _write_memory(url: str, array: np.ndarray) -> None:
    with fsspec.open(url, "wb") as handle:
        np.save(handle, array)


# -- .npy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "file-url", "memory"])
@pytest.mark.parametrize(("block_frames", "start"), [(16, 0), (16, 5), (50, 0), (7, 49)])
def test_npy_blocks(tmp_path, where, block_frames, start):
    array = _frames()
    if where == "memory":
        uri = f"memory://arrays/{tmp_path.name}.npy"
        _write_memory(uri, array)
    else:
        np.save(tmp_path / "a.npy", array)
        uri = str(tmp_path / "a.npy") if where == "local" else f"file://{tmp_path}/a.npy"
    source = NpySource(uri)
    probe = source.probe()
    assert (probe.frame_shape, probe.dtype, probe.length) == ((3, 2), np.float32, 50)
    blocks = _read(source, block_frames, start)
    np.testing.assert_array_equal(np.concatenate([b.frames for b in blocks]), array[start:])


def test_npy_fortran_order_local(tmp_path):
    array = np.asfortranarray(_frames(10, (4,)))
    np.save(tmp_path / "f.npy", array)
    blocks = _read(NpySource(str(tmp_path / "f.npy")), 3)
    np.testing.assert_array_equal(np.concatenate([b.frames for b in blocks]), array)


def test_npy_one_dimensional_frames_are_scalars(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(5, dtype=np.int16))
    assert NpySource(str(tmp_path / "s.npy")).probe().frame_shape == ()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 3), np.float32), "zero-length"),  # no frames
        (np.float32(1.0), "0-dimensional"),  # a scalar
        (np.array(["a", "b"]), "dtype"),  # strings
    ],
)
def test_invalid_npy_is_rejected(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(SourceError, match=f"bad.npy.*{message}"):
        NpySource(str(tmp_path / "bad.npy")).probe()


def test_truncated_npy_names_the_file(tmp_path):
    np.save(tmp_path / "t.npy", _frames())
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"t\.npy"):
        NpySource(str(tmp_path / "t.npy")).probe()


def test_truncated_remote_npy_fails_while_reading():
    url = "memory://arrays/truncated.npy"
    _write_memory(url, _frames())
    fs = fsspec.filesystem("memory")
    data = fs.cat_file(url)
    fs.pipe_file(url, data[: len(data) - 100])
    source = NpySource(url)
    source.probe()  # the header is intact
    with pytest.raises(SourceError, match=r"truncated\.npy.*truncated"):
        list(source.blocks(16))


def test_object_npy_is_rejected(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(SourceError, match=r"o\.npy"):
        NpySource(str(tmp_path / "o.npy")).probe()


def test_missing_npy_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"absent\.npy"):
        NpySource(str(tmp_path / "absent.npy")).probe()


def test_synth_array_round_trips(tmp_path):
    (path,) = synth_array(tmp_path / "big.npy", 3000, (4, 4), np.uint8, seed=3, block_frames=1000)
    array = np.load(path)
    assert array.shape == (3000, 4, 4) and array.dtype == np.uint8
    blocks = _read(NpySource(path), 512)
    np.testing.assert_array_equal(np.concatenate([b.frames for b in blocks]), array)


# -- .npz ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_frames_and_labels_stream_together(tmp_path, compressed):
    frames, labels = _frames(), np.arange(50) % 3
    (np.savez_compressed if compressed else np.savez)(tmp_path / "d.npz", x=frames, labels=labels)
    source = NpzSource(str(tmp_path / "d.npz"))
    probe = source.probe()
    assert (probe.frame_shape, probe.length, probe.label_shape) == ((3, 2), 50, ())
    assert probe.label_dtype == labels.dtype
    blocks = _read(source, 16, start=5)
    np.testing.assert_array_equal(np.concatenate([b.frames for b in blocks]), frames[5:])
    np.testing.assert_array_equal(np.concatenate([b.labels for b in blocks]), labels[5:])


def test_npz_with_several_arrays_needs_a_key(tmp_path):
    np.savez(tmp_path / "m.npz", a=_frames(), b=_frames(5))
    with pytest.raises(SourceError, match=r"m.npz.*\['a', 'b'\].*key"):
        NpzSource(str(tmp_path / "m.npz")).probe()
    assert NpzSource(str(tmp_path / "m.npz"), key="b").probe().length == 5
    with pytest.raises(SourceError, match=r"no member 'c'.*\['a', 'b'\]"):
        NpzSource(str(tmp_path / "m.npz"), key="c").probe()


def test_npz_labels_of_the_wrong_length_are_rejected(tmp_path):
    np.savez(tmp_path / "l.npz", x=_frames(), labels=np.zeros(7))
    with pytest.raises(SourceError, match=r"l.npz.*labels.*\(7,\).*50 rows"):
        NpzSource(str(tmp_path / "l.npz")).probe()


def test_empty_npz_member_is_zero_length(tmp_path):
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 2)))
    with pytest.raises(SourceError, match="zero-length"):
        NpzSource(str(tmp_path / "e.npz")).probe()


def test_not_a_zip_is_rejected(tmp_path):
    (tmp_path / "z.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(SourceError, match=r"z\.npz"):
        NpzSource(str(tmp_path / "z.npz")).probe()


# -- Zarr ----------------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_array_blocks(tmp_path, zarr_format):
    frames = _frames(23, (4,))
    array = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=frames.shape,
        chunks=(5, 4),
        dtype=frames.dtype,
        zarr_format=zarr_format,
    )
    array[:] = frames
    source = ZarrArraySource(str(tmp_path / "a.zarr"))
    probe = source.probe()
    assert (probe.frame_shape, probe.length, probe.dtype) == ((4,), 23, np.float32)
    assert probe.fingerprint.startswith("zarr:")
    blocks = _read(source, 10, start=3)
    np.testing.assert_array_equal(np.concatenate([b.frames for b in blocks]), frames[3:])


def test_zarr_array_inside_a_group(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("frames", shape=(6, 2), dtype="int16")[:] = np.ones((6, 2))
    with pytest.raises(SourceError, match=r"g\.zarr.*group"):
        ZarrArraySource(str(tmp_path / "g.zarr")).probe()
    source = ZarrArraySource(str(tmp_path / "g.zarr"), path="frames")
    assert source.probe().length == 6
    assert next(source.blocks(10)).frames.sum() == 12


def test_zarr_fingerprint_changes_when_a_chunk_changes(tmp_path):
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=(10, 2), chunks=(5, 2), dtype="f4")
    array[:] = np.random.default_rng(0).standard_normal((10, 2))
    before = ZarrArraySource(str(tmp_path / "a.zarr")).probe().fingerprint
    assert ZarrArraySource(str(tmp_path / "a.zarr")).probe().fingerprint == before
    array[5:] = 0  # a constant chunk compresses to a different size
    assert ZarrArraySource(str(tmp_path / "a.zarr")).probe().fingerprint != before


def test_zero_length_zarr_is_rejected(tmp_path):
    zarr.create_array(str(tmp_path / "e.zarr"), shape=(0, 2), chunks=(4, 2), dtype="f4")
    with pytest.raises(SourceError, match=r"e\.zarr.*zero-length"):
        ZarrArraySource(str(tmp_path / "e.zarr")).probe()


def test_missing_zarr_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"absent\.zarr"):
        ZarrArraySource(str(tmp_path / "absent.zarr")).probe()
