"""ImageFolderSource: natural order, shapes, transforms, and bad folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segflow.errors import SourceError, SourceNotFoundError
from segflow.sources.images import ImageFolderSource, natural_key
from segflow.synth import synth_image_folder


def _save(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def _numbered_folder(folder: Path, count: int, shape=(6, 5, 3)) -> list[np.ndarray]:
    """Write ``img1.png``..``img<count>.png`` whose pixels all equal the frame number."""
    folder.mkdir()
    frames = [np.full(shape, i, dtype=np.uint8) for i in range(count)]
    for i, frame in enumerate(frames):
        _save(folder / f"img{i + 1}.png", frame)
    return frames


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["img10.png", "img2.png", "img1.png"], ["img1.png", "img2.png", "img10.png"]),
        (["b.png", "A.png", "a1.png"], ["A.png", "a1.png", "b.png"]),  # case-insensitive text
        (["x_9_b.png", "x_10_a.png", "x_9_a.png"], ["x_9_a.png", "x_9_b.png", "x_10_a.png"]),
        (["f.png", "f2.png", "f10.png"], ["f.png", "f2.png", "f10.png"]),  # stem before extension
    ],
)
def test_natural_sort(names, expected):
    assert sorted(names, key=natural_key) == expected


def test_frames_come_in_natural_order(tmp_path):
    expected = _numbered_folder(tmp_path / "seq", 12)
    source = ImageFolderSource(str(tmp_path / "seq"))
    probe = source.probe()
    assert (probe.frame_shape, probe.dtype, probe.length) == ((6, 5, 3), np.uint8, 12)
    blocks = list(source.blocks(5, start=3))
    assert [b.start for b in blocks] == [3, 8]
    assert [len(b.frames) for b in blocks] == [5, 4]
    np.testing.assert_array_equal(
        np.concatenate([b.frames for b in blocks]), np.stack(expected[3:])
    )


def test_non_images_and_hidden_files_are_ignored(tmp_path):
    _numbered_folder(tmp_path / "seq", 3)
    (tmp_path / "seq" / "notes.txt").write_text("hi")
    _save(tmp_path / "seq" / ".hidden.png", np.zeros((6, 5, 3), np.uint8))
    assert ImageFolderSource(str(tmp_path / "seq")).probe().length == 3


def test_grayscale_images_keep_a_channel_axis(tmp_path):
    _numbered_folder(tmp_path / "gray", 4, shape=(7, 9))
    source = ImageFolderSource(str(tmp_path / "gray"))
    assert source.probe().frame_shape == (7, 9, 1)
    frames = next(source.blocks(10)).frames
    assert frames.shape == (4, 7, 9, 1)
    np.testing.assert_array_equal(frames[:, 0, 0, 0], [0, 1, 2, 3])


def test_resize_and_grayscale_options(tmp_path):
    synth_image_folder(tmp_path / "imgs", frames=6, height=16, width=24)
    source = ImageFolderSource(str(tmp_path / "imgs"), resize=(8, 4), grayscale=True)
    assert source.probe().frame_shape == (8, 4, 1)
    assert next(source.blocks(6)).frames.shape == (6, 8, 4, 1)


def test_differing_shapes_name_the_file_and_both_shapes(tmp_path):
    _numbered_folder(tmp_path / "seq", 3)
    _save(tmp_path / "seq" / "img4.png", np.zeros((6, 7, 3), np.uint8))
    with pytest.raises(SourceError, match=r"img4\.png.*\(6, 7, 3\).*img1\.png.*\(6, 5, 3\)"):
        ImageFolderSource(str(tmp_path / "seq")).probe()


def test_differing_modes_are_rejected_while_reading_too(tmp_path):
    _numbered_folder(tmp_path / "seq", 3)
    source = ImageFolderSource(str(tmp_path / "seq"))
    source.probe()
    _save(tmp_path / "seq" / "img3.png", np.zeros((6, 5), np.uint8))  # replaced after probe
    with pytest.raises(SourceError, match=r"img3\.png.*mode 'L'"):
        list(source.blocks(2))


def test_empty_folder_is_zero_length(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"empty.*zero-length"):
        ImageFolderSource(str(tmp_path / "empty")).probe()


def test_missing_folder_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match="absent"):
        ImageFolderSource(str(tmp_path / "absent")).probe()


def test_corrupt_image_names_the_file(tmp_path):
    _numbered_folder(tmp_path / "seq", 3)
    (tmp_path / "seq" / "img2.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(SourceError, match=r"img2\.png"):
        ImageFolderSource(str(tmp_path / "seq")).probe()


def test_truncated_image_data_names_the_file(tmp_path):
    _numbered_folder(tmp_path / "seq", 2, shape=(64, 64, 3))
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    _save(tmp_path / "seq" / "img2.png", noisy)
    data = (tmp_path / "seq" / "img2.png").read_bytes()
    (tmp_path / "seq" / "img2.png").write_bytes(data[: len(data) // 2])
    source = ImageFolderSource(str(tmp_path / "seq"))
    source.probe()  # the header is intact
    with pytest.raises(SourceError, match=r"img2\.png.*corrupt"):
        list(source.blocks(2))


def test_fingerprint_tracks_content_and_names(tmp_path):
    _numbered_folder(tmp_path / "seq", 3)
    first = ImageFolderSource(str(tmp_path / "seq")).probe().fingerprint
    assert ImageFolderSource(str(tmp_path / "seq")).probe().fingerprint == first
    _save(tmp_path / "seq" / "img2.png", np.full((6, 5, 3), 99, np.uint8))
    changed = ImageFolderSource(str(tmp_path / "seq")).probe().fingerprint
    assert changed != first
    (tmp_path / "seq" / "img3.png").rename(tmp_path / "seq" / "img30.png")
    assert ImageFolderSource(str(tmp_path / "seq")).probe().fingerprint not in (first, changed)
