"""Label files: loading .npy/.csv/.txt and finding sidecars next to sources."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pytest

from segflow.errors import SourceError, SourceNotFoundError
from segflow.sources.labels import load_labels, sidecar_labels


def test_npy_keeps_its_dtype_and_shape(tmp_path):
    np.save(tmp_path / "l.npy", np.array([[1, 2], [3, 4]], dtype=np.int8))
    labels = load_labels(str(tmp_path / "l.npy"))
    assert labels.dtype == np.int8 and labels.shape == (2, 2)


@pytest.mark.parametrize(
    ("name", "text", "expected", "dtype"),
    [
        ("l.txt", "0\n1\n1\n", [0, 1, 1], np.int64),  # one value per line
        ("l.csv", "label\n0\n1\n", [0, 1], np.int64),  # a header is skipped
        ("l.csv", "0.5\n1.25\n\n", [0.5, 1.25], np.float32),  # fractions: float32
        ("l.csv", "a,b\n1,2\n3,4\n", [[1, 2], [3, 4]], np.int64),  # a vector per frame
        ("l.txt", "7\n", [7], np.int64),  # one row: a per-sequence label
    ],
)
def test_text_labels(tmp_path, name, text, expected, dtype):
    (tmp_path / name).write_text(text)
    labels = load_labels(str(tmp_path / name))
    assert labels.dtype == dtype
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("l.csv", "label\n", "empty"),
        ("l.csv", "1\nabc\n", "data row 2.*non-numeric"),
        ("l.csv", "1,2\n3\n", "different widths"),
        ("l.json", "[1, 2]", "unsupported extension"),
    ],
)
def test_bad_label_files(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(SourceError, match=f"{name}.*{message}"):
        load_labels(str(tmp_path / name))


def test_a_scalar_npy_is_one_label_for_the_sequence(tmp_path):
    np.save(tmp_path / "l.npy", np.int64(3))  # how people save one class per recording
    labels = load_labels(str(tmp_path / "l.npy"))
    assert labels.shape == (1,) and labels[0] == 3


def test_boolean_labels_become_zero_and_one(tmp_path):
    np.save(tmp_path / "b.npy", np.array([True, False, True]))
    np.testing.assert_array_equal(load_labels(str(tmp_path / "b.npy")), [1, 0, 1])
    (tmp_path / "b.csv").write_text("rain\nyes\nNo\nTRUE\nfalse\n")
    np.testing.assert_array_equal(load_labels(str(tmp_path / "b.csv")), [1, 0, 1, 0])


def test_empty_cells_are_unlabelled_frames(tmp_path):
    (tmp_path / "v.csv").write_text("a,b\n1,2\n,4\n")
    labels = load_labels(str(tmp_path / "v.csv"))
    assert labels.dtype == np.float32 and np.isnan(labels[1, 0]) and labels[1, 1] == 4


def test_missing_label_file_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"absent\.npy"):
        load_labels(str(tmp_path / "absent.npy"))


def test_sidecar_next_to_a_file_prefers_npy(tmp_path):
    (tmp_path / "cam.mp4").write_bytes(b"")
    assert sidecar_labels(str(tmp_path / "cam.mp4")) is None
    (tmp_path / "cam.labels.csv").write_text("1\n")
    assert sidecar_labels(str(tmp_path / "cam.mp4")) == str(tmp_path / "cam.labels.csv")
    np.save(tmp_path / "cam.labels.npy", np.zeros(3))
    assert sidecar_labels(str(tmp_path / "cam.mp4")) == str(tmp_path / "cam.labels.npy")


def test_sidecar_of_a_folder_sits_beside_it(tmp_path):
    (tmp_path / "frames").mkdir()
    np.save(tmp_path / "frames.labels.npy", np.zeros(3))
    assert sidecar_labels(str(tmp_path / "frames")) == str(tmp_path / "frames.labels.npy")
    assert sidecar_labels(str(tmp_path / "frames") + "/") == str(tmp_path / "frames.labels.npy")


def test_sidecar_and_labels_through_fsspec():
    with fsspec.open("memory://lbl/run/cam.labels.txt", "w") as handle:
        handle.write("1\n0\n")
    found = sidecar_labels("memory://lbl/run/cam.mkv")
    assert found == "memory://lbl/run/cam.labels.txt"
    np.testing.assert_array_equal(load_labels(found), [1, 0])
    assert sidecar_labels("memory://lbl/run/other.mkv") is None


def test_synth_video_sidecar_is_found(video_file):
    found = sidecar_labels(video_file.path)
    assert found is not None and Path(found).name == "video_000.labels.npy"
    np.testing.assert_array_equal(load_labels(found), video_file.labels)
