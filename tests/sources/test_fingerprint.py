"""Fingerprints: stable for equal content, different for changed content, cacheable."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import numpy as np
import pytest

from segflow.errors import SourceNotFoundError
from segflow.fingerprint import (
    BLOCK_BYTES,
    StreamingFileHash,
    file_fingerprint,
    folder_fingerprint,
    url_fingerprint,
    zarr_fingerprint,
)


def test_file_fingerprint_format_and_stability(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    first = file_fingerprint(path)
    assert first.value.startswith("xxh3:") and first.value.endswith(":size=3000")
    assert first.size == 3000 and first.mtime_ns == path.stat().st_mtime_ns
    copy = tmp_path / "g.bin"
    copy.write_bytes(path.read_bytes())
    assert file_fingerprint(copy).value == first.value  # content, not name or time


def test_same_size_different_content_changes_it(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * (BLOCK_BYTES + 10))  # spans two read blocks
    before = file_fingerprint(path).value
    with open(path, "r+b") as handle:
        handle.seek(BLOCK_BYTES + 5)
        handle.write(b"b")
    assert file_fingerprint(path).value != before


def test_known_record_skips_rehashing_only_while_size_and_mtime_match(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"content")
    real = file_fingerprint(path)
    # A record with the right size and mtime but a made-up value proves no re-hash happened.
    forged = {**real.record(), "fingerprint": "blake2b:cached:size=7"}
    assert file_fingerprint(path, known=forged).value == "blake2b:cached:size=7"
    stale = {**forged, "mtime_ns": real.mtime_ns - 1}
    assert file_fingerprint(path, known=stale).value == real.value
    os.utime(path, ns=(real.mtime_ns + 10**9, real.mtime_ns + 10**9))
    assert file_fingerprint(path, known=forged).value == real.value
    assert file_fingerprint(path, known={}).value == real.value


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match="absent"):
        file_fingerprint(tmp_path / "absent")


def test_remote_without_etag_is_hashed_like_a_local_file(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"xyz" * 10)
    with fsspec.open("memory://fp/f.bin", "wb") as handle:
        handle.write(b"xyz" * 10)
    assert url_fingerprint("memory://fp/f.bin").value == file_fingerprint(tmp_path / "f.bin").value
    with pytest.raises(SourceNotFoundError):
        url_fingerprint("memory://fp/absent.bin")


def test_s3_uses_size_and_etag(s3, s3_options):
    fs, prefix = s3
    fs.pipe(f"{prefix}/a.bin", b"hello")
    fingerprint = url_fingerprint(f"s3://{prefix}/a.bin", storage_options=s3_options)
    assert fingerprint.value.startswith("etag:") and fingerprint.value.endswith(":size=5")
    assert '"' not in fingerprint.value
    fs.pipe(f"{prefix}/a.bin", b"world")
    fs.invalidate_cache()
    assert (
        url_fingerprint(f"s3://{prefix}/a.bin", storage_options=s3_options).value
        != fingerprint.value
    )


def _folder(tmp_path: Path, contents: dict[str, bytes]) -> list[str]:
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [str(folder / name) for name in contents]


def test_folder_fingerprint_is_order_independent_and_content_sensitive(tmp_path):
    files = _folder(tmp_path, {"a.png": b"1", "b.png": b"22"})
    first = folder_fingerprint(files)
    assert first.value.endswith(":files=2") and first.size == 3
    assert folder_fingerprint(list(reversed(files))).value == first.value
    Path(files[1]).write_bytes(b"33")
    assert folder_fingerprint(files).value != first.value


def test_folder_record_is_reused_until_a_file_changes(tmp_path):
    files = _folder(tmp_path, {"a.png": b"1", "b.png": b"22"})
    real = folder_fingerprint(files)
    forged = {**real.record(), "fingerprint": "folder:cached:files=2"}
    assert folder_fingerprint(files, known=forged).value == "folder:cached:files=2"
    Path(files[0]).write_bytes(b"9")
    os.utime(files[0], ns=(1, 1))
    assert folder_fingerprint(files, known=forged).value not in (
        "folder:cached:files=2",
        real.value,
    )


def test_zarr_fingerprint_reads_metadata_and_chunk_sizes_only(tmp_path):
    import zarr

    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=(8,), chunks=(4,), dtype="i4")
    array[:] = np.arange(8)
    first = zarr_fingerprint(str(tmp_path / "a.zarr"))
    assert first.value.startswith("zarr:") and first.value.endswith(":chunks=2")
    array.attrs["note"] = "changed"  # metadata content counts
    assert zarr_fingerprint(str(tmp_path / "a.zarr")).value != first.value
    with pytest.raises(SourceNotFoundError):
        zarr_fingerprint(str(tmp_path / "absent.zarr"))


def test_streaming_hash_equals_the_file_fingerprint(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(10_000))
    with open(path, "rb") as handle:
        hasher = StreamingFileHash(handle.fileno(), str(path))
        while piece := handle.read(3_000):
            hasher.update(np.frombuffer(piece, dtype=np.uint8))
        assert hasher.finish() == file_fingerprint(path)


def test_streaming_hash_of_part_of_a_file_is_none(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as handle:
        hasher = StreamingFileHash(handle.fileno(), str(path))
        hasher.update(handle.read(4))
        assert hasher.finish() is None
