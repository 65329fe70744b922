"""Ingest core: layout, idempotence, safe replacement, append, resume and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segflow.config import WriteConfig
from segflow.errors import (
    ConfigError,
    IncompleteSequenceError,
    InvalidIdError,
    SegflowError,
    SourceError,
)
from segflow.ingest import ingest_source
from storage import open_store
from storage.sequences import SequenceRepository


def frames(n: int, shape=(6, 5, 3), dtype="uint8", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=(n, *shape)).astype(dtype)
    return rng.integers(0, 255, size=(n, *shape), dtype=dtype)


def save(path: Path, array: np.ndarray) -> str:
    np.save(path, array)
    return str(path)


@pytest.fixture()
def repo(tmp_path: Path) -> SequenceRepository:
    return SequenceRepository(open_store(tmp_path / "store"))


def write(segment_length: int = 4, **kw) -> WriteConfig:
    return WriteConfig(segment_length=segment_length, block_bytes=1, **kw)


def test_npy_roundtrip_layout(tmp_path: Path, repo: SequenceRepository) -> None:
    data = frames(23)
    result = ingest_source(save(tmp_path / "clip.npy", data), repo, write_config=write())
    assert (result.status, result.sequence_id, result.frames) == ("written", "clip", 23)
    info = repo.info("clip")
    assert info.complete and info.length == 23
    assert info.chunks == (4, 6, 5, 3)
    assert info.dimension_names == ("time", "height", "width", "channel")
    np.testing.assert_array_equal(repo.frames("clip")[:23], data)
    assert info.meta.fingerprint and info.meta.source_uri.endswith("clip.npy")
    codecs = json.loads(repo.store.read_bytes("sequences/clip/frames/zarr.json"))["codecs"]
    assert [c["name"] for c in codecs][-1] == "crc32c"


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_float_series_each_compression(tmp_path: Path, repo, compression) -> None:
    data = frames(50, shape=(7,), dtype="float32")
    ingest_source(
        save(tmp_path / "s.npy", data), repo, write_config=write(8, compression=compression)
    )
    assert repo.info("s").dimension_names == ("time", "feature")
    np.testing.assert_array_equal(repo.frames("s")[:], data)


def test_rerun_skips_unchanged(tmp_path: Path, repo) -> None:
    path = save(tmp_path / "a.npy", frames(10))
    ingest_source(path, repo, write_config=write())
    mtime = (repo.store.root / "sequences/a/frames/zarr.json").stat().st_mtime_ns
    again = ingest_source(path, repo, write_config=write())
    assert again.status == "skipped"
    assert (repo.store.root / "sequences/a/frames/zarr.json").stat().st_mtime_ns == mtime


def test_changed_source_is_replaced(tmp_path: Path, repo) -> None:
    path = tmp_path / "a.npy"
    save(path, frames(10, seed=1))
    ingest_source(str(path), repo, write_config=write())
    new = frames(13, seed=2)
    save(path, new)
    assert ingest_source(str(path), repo, write_config=write()).status == "written"
    assert repo.info("a").length == 13
    np.testing.assert_array_equal(repo.frames("a")[:], new)
    assert not repo.exists("a", staging=True)


def test_bad_replacement_leaves_complete_sequence_untouched(tmp_path: Path, repo) -> None:
    path = tmp_path / "a.npy"
    good = frames(12, shape=(3,), dtype="float32")
    save(path, good)
    ingest_source(str(path), repo, write_config=write())
    bad = good.copy()
    bad[9, 1] = np.inf  # (NaN is a missing value, and would be stored)
    save(path, bad)
    with pytest.raises(SourceError, match=r"a\.npy.*frame 9.*inf"):
        ingest_source(str(path), repo, write_config=write())
    assert repo.info("a").complete
    np.testing.assert_array_equal(repo.frames("a")[:], good)


def test_inf_in_new_sequence_leaves_nothing(tmp_path: Path, repo) -> None:
    bad = frames(9, shape=(3,), dtype="float64")
    bad[7, 0] = np.inf
    with pytest.raises(SourceError, match="frame 7"):
        ingest_source(save(tmp_path / "b.npy", bad), repo, write_config=write())
    assert not repo.exists("b")


def test_append_keeps_alignment_and_skips_repeat(tmp_path: Path, repo) -> None:
    first, second = frames(10, seed=1), frames(7, seed=2)
    ingest_source(save(tmp_path / "p1.npy", first), repo, sequence_id="cam", write_config=write())
    p2 = save(tmp_path / "p2.npy", second)
    result = ingest_source(p2, repo, sequence_id="cam", append=True, write_config=write())
    assert (result.status, result.frames) == ("appended", 7)
    info = repo.info("cam")
    assert info.length == 17 and info.complete and info.chunks[0] == 4
    np.testing.assert_array_equal(repo.frames("cam")[:], np.concatenate([first, second]))
    assert [s["stop"] for s in info.meta.sources] == [10, 17]
    again = ingest_source(p2, repo, sequence_id="cam", append=True, write_config=write())
    assert again.status == "skipped" and repo.info("cam").length == 17


def test_append_of_other_shape_is_refused(tmp_path: Path, repo) -> None:
    ingest_source(
        save(tmp_path / "p1.npy", frames(8)), repo, sequence_id="cam", write_config=write()
    )
    other = save(tmp_path / "p2.npy", frames(8, shape=(2, 2, 3)))
    with pytest.raises(ConfigError, match="Cannot append"):
        ingest_source(other, repo, sequence_id="cam", append=True, write_config=write())
    assert repo.info("cam").length == 8


def test_labels_per_frame_and_per_sequence(tmp_path: Path, repo) -> None:
    data = frames(11)
    labels = np.arange(11, dtype="int8") % 2
    labels_path = save(tmp_path / "l.npy", labels)
    ingest_source(
        save(tmp_path / "x.npy", data), repo, labels_path=labels_path, write_config=write()
    )
    assert repo.info("x").meta.label_kind == "per_frame"
    np.testing.assert_array_equal(repo.labels("x")[:], labels)
    one = save(tmp_path / "one.npy", np.array([3], dtype="int64"))
    ingest_source(save(tmp_path / "y.npy", data), repo, labels_path=one, write_config=write())
    assert repo.info("y").meta.label_kind == "per_sequence"
    assert repo.labels("y")[:].tolist() == [3]


def test_label_length_mismatch_is_refused(tmp_path: Path, repo) -> None:
    labels_path = save(tmp_path / "l.npy", np.zeros(5, dtype="int8"))
    with pytest.raises(SourceError, match=r"5 labels.*11 frames"):
        ingest_source(
            save(tmp_path / "x.npy", frames(11)),
            repo,
            labels_path=labels_path,
            write_config=write(),
        )
    assert not repo.exists("x")


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", ".hidden", "a..b"])
def test_invalid_ids_are_refused(tmp_path: Path, repo, bad_id) -> None:
    with pytest.raises(InvalidIdError, match="Invalid sequence id"):
        ingest_source(
            save(tmp_path / "x.npy", frames(3)), repo, sequence_id=bad_id, write_config=write()
        )
    assert repo.ids() == []


def test_segment_length_must_be_positive() -> None:
    with pytest.raises(ValueError, match="segment_length"):
        WriteConfig(segment_length=0)


def test_missing_source_names_the_path(tmp_path: Path, repo) -> None:
    with pytest.raises(SegflowError, match=r"nope\.npy"):
        ingest_source(str(tmp_path / "nope.npy"), repo, write_config=write())


def test_zero_length_source(tmp_path: Path, repo) -> None:
    with pytest.raises(SourceError, match=r"(?i)zero|empty"):
        ingest_source(save(tmp_path / "z.npy", frames(0)), repo, write_config=write())
    assert not repo.exists("z")


def test_incomplete_sequence_is_refused_by_readers(tmp_path: Path, repo) -> None:
    ingest_source(save(tmp_path / "a.npy", frames(9)), repo, write_config=write())
    repo.write_meta("a", repo.meta("a").replace(complete=False))
    with pytest.raises(IncompleteSequenceError, match="not marked complete"):
        repo.frames("a")


def test_rerun_does_not_rehash_unchanged_files(tmp_path: Path, repo, monkeypatch) -> None:
    import segflow.fingerprint as fingerprint

    path = save(tmp_path / "a.npy", frames(10))
    ingest_source(path, repo, write_config=write())
    calls = []
    real = fingerprint._hash_stream
    monkeypatch.setattr(fingerprint, "_hash_stream", lambda h: calls.append(1) or real(h))
    assert ingest_source(path, repo, write_config=write()).status == "skipped"
    assert calls == []


@pytest.mark.parametrize("dtype", ["uint8", ">f4"])  # the file's bytes, whatever the byte order
def test_fresh_ingest_reads_the_source_once(tmp_path: Path, repo, monkeypatch, dtype) -> None:
    import segflow.fingerprint as fingerprint
    from segflow.fingerprint import file_fingerprint

    path = save(tmp_path / "a.npy", frames(10, dtype=dtype))
    monkeypatch.setattr(fingerprint, "_hash_stream", lambda h: pytest.fail("hashed twice"))
    assert ingest_source(path, repo, write_config=write()).status == "written"
    monkeypatch.undo()
    expected = file_fingerprint(path).value
    meta = repo.meta("a")
    assert meta.fingerprint == expected and meta.sources[0]["fingerprint"] == expected
    assert ingest_source(path, repo, write_config=write()).status == "skipped"


def test_a_source_rewritten_during_a_fresh_ingest_is_refused(tmp_path: Path, repo) -> None:
    from segflow.ingest import run

    path = save(tmp_path / "a.npy", frames(12))
    source = run.open_source(path)
    assert source.defer_fingerprint()
    blocks = source.blocks(4)
    next(blocks)
    with open(path, "ab") as handle:  # a writer still appending to the file
        handle.write(b"more")
    with pytest.raises(SourceError, match="changed while it was being read"):
        list(blocks)


def smooth(n: int, shape=(6, 5, 3), dtype="uint8") -> np.ndarray:
    """Frames lz4 shrinks many times over: a gradient that moves one step a frame."""
    ramp = np.arange(int(np.prod(shape))).reshape(shape)
    return np.stack([(ramp // 8 + t) % 200 for t in range(n)]).astype(dtype)


@pytest.mark.parametrize(
    "data, compression, codecs",
    [
        # integer frames lz4 shrinks well: blosc lz4, no shuffle for single bytes
        (smooth(40, (16, 16, 3)), "auto", [("blosc", "lz4", "noshuffle"), "crc32c"]),
        # 2-byte integers that shrink well: lz4 with bitshuffle, as before
        (smooth(40, (16, 16, 3), "uint16"), "auto", [("blosc", "lz4", "bitshuffle"), "crc32c"]),
        # noise (sensor noise, JPEG photos): lz4 saves too little, stored as is
        (frames(40, (16, 16, 3)), "auto", ["crc32c"]),
        # float feature vectors: never compressed by auto
        (frames(9, (4,), "float32"), "auto", ["crc32c"]),
        # asked for: lz4 even on noise
        (frames(40, (16, 16, 3)), "lz4", [("blosc", "lz4", "noshuffle"), "crc32c"]),
        (frames(9, (4,), "float32"), "zstd", ["zstd", "crc32c"]),
    ],
)
def test_compression_recorded_per_array(
    tmp_path: Path, repo: SequenceRepository, data: np.ndarray, compression: str, codecs: list
) -> None:
    path = save(tmp_path / "a.npy", data)
    config = write(compression=compression)
    assert ingest_source(path, repo, write_config=config).status == "written"
    metadata = json.loads(repo.store.read_bytes("sequences/a/frames/zarr.json"))
    recorded = [
        (c["name"], c["configuration"]["cname"], c["configuration"]["shuffle"])
        if c["name"] == "blosc"
        else c["name"]
        for c in metadata["codecs"][1:]  # after "bytes"
    ]
    assert recorded == codecs
    np.testing.assert_array_equal(repo.frames("a")[: len(data)], data)  # bit-exact
    assert ingest_source(path, repo, write_config=config).status == "skipped"  # unchanged


def test_auto_compression_of_a_large_source_is_chosen_on_its_first_block(
    tmp_path: Path, repo: SequenceRepository
) -> None:
    # Blocks are written by the writer (not in one go): the choice is made before the first.
    data = np.concatenate([smooth(8, (16, 16, 3)), frames(24, (16, 16, 3))])
    path = save(tmp_path / "a.npy", data)
    result = ingest_source(path, repo, write_config=write())  # blocks of one segment
    assert result.status == "written"
    metadata = json.loads(repo.store.read_bytes("sequences/a/frames/zarr.json"))
    assert [c["name"] for c in metadata["codecs"]] == ["bytes", "blosc", "crc32c"]
    np.testing.assert_array_equal(repo.frames("a")[:32], data)


def test_concurrent_first_writes_on_an_empty_store(tmp_path: Path) -> None:
    import threading

    paths = [save(tmp_path / f"c{i}.npy", frames(6, seed=i)) for i in range(6)]
    errors: list[BaseException] = []

    def run(path: str) -> None:
        try:
            ingest_source(
                path, SequenceRepository(open_store(tmp_path / "store")), write_config=write()
            )
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert SequenceRepository(open_store(tmp_path / "store")).ids() == [f"c{i}" for i in range(6)]
