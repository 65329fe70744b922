"""discover, open_source, source_kind and partition_of, locally and on S3 (moto)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from pydantic import ValidationError

from segflow.errors import SourceError, SourceNotFoundError
from segflow.sources.arrays import NpySource, NpzSource, ZarrArraySource
from segflow.sources.csv import CsvSource
from segflow.sources.discover import SourceOptions, discover, open_source, partition_of, source_kind
from segflow.sources.images import ImageFolderSource
from segflow.sources.video import VideoSource
from segflow.synth import synth_image_folder, synth_series_csv


@pytest.fixture
def tree(tmp_path: Path, video_file) -> Path:
    """A mixed archive::

    root/2026-01-31/cam1.mp4, cam1.labels.npy, cam10.mp4, cam2.mp4
    root/2026-02-01/frames/img1.png...       (one image-folder source)
    root/2026-02-01/frames.labels.npy
    root/series/series_000.csv, a.npy, b.npz, store.zarr/..., readme.txt, .hidden.npy
    """
    video = Path(video_file.path).read_bytes()
    day = tmp_path / "root" / "2026-01-31"
    day.mkdir(parents=True)
    for name in ("cam1.mp4", "cam10.mp4", "cam2.mp4"):
        (day / name).write_bytes(video)
    np.save(day / "cam1.labels.npy", video_file.labels)
    synth_image_folder(tmp_path / "root" / "2026-02-01" / "frames", frames=3)
    series = tmp_path / "root" / "series"
    synth_series_csv(series, count=1, rows=5, features=2)
    np.save(series / "a.npy", np.zeros((4, 2)))
    np.save(series / ".hidden.npy", np.zeros((4, 2)))
    np.savez(series / "b.npz", x=np.zeros((4, 2)))
    zarr.create_array(str(series / "store.zarr"), shape=(4, 2), chunks=(2, 2), dtype="f4")[:] = 1
    (series / "readme.txt").write_text("not a source")
    return tmp_path / "root"


def test_directory_expands_recursively_in_natural_order(tree):
    found = discover([str(tree)])
    assert [str(Path(f).relative_to(tree)) for f in found] == [
        "2026-01-31/cam1.mp4",
        "2026-01-31/cam2.mp4",
        "2026-01-31/cam10.mp4",
        "2026-02-01/frames",
        "series/a.npy",
        "series/b.npz",
        "series/series_000.csv",
        "series/store.zarr",
    ]


def test_image_directory_is_one_source(tree):
    assert discover([str(tree / "2026-02-01" / "frames")]) == [str(tree / "2026-02-01" / "frames")]


def test_globs_and_explicit_files(tree):
    assert discover([str(tree / "*" / "cam?.mp4")]) == [
        str(tree / "2026-01-31" / "cam1.mp4"),
        str(tree / "2026-01-31" / "cam2.mp4"),
    ]
    # A glob matching directories expands them; duplicates across specs are dropped.
    found = discover([str(tree / "2026-*"), str(tree / "2026-01-31" / "cam2.mp4")])
    assert len(found) == len(set(found)) == 4
    # A file named explicitly is kept whatever its extension; open_source judges it.
    assert discover([str(tree / "series" / "readme.txt")]) == [str(tree / "series" / "readme.txt")]


@pytest.mark.parametrize("spec", ["absent", "absent/*.mp4", "series/*.mkv"])
def test_specs_matching_nothing_are_not_found(tree, spec):
    with pytest.raises(SourceNotFoundError, match=spec.replace("*", r"\*").replace(".", r"\.")):
        discover([str(tree / spec)])


def test_open_source_picks_by_kind(tree):
    expected = {
        "cam1.mp4": (VideoSource, "video"),
        "frames": (ImageFolderSource, "images"),
        "a.npy": (NpySource, "npy"),
        "b.npz": (NpzSource, "npz"),
        "series_000.csv": (CsvSource, "csv"),
        "store.zarr": (ZarrArraySource, "zarr"),
    }
    for uri in discover([str(tree)]):
        name = Path(uri).name
        if name in expected:
            cls, kind = expected[name]
            assert source_kind(uri) == kind
            source = open_source(uri)
            assert isinstance(source, cls)
            assert source.probe().length in (None, 3, 4, 40)


def test_open_source_passes_options(tree):
    options = SourceOptions(resize=(8, 8), grayscale=True, feature_columns=["f1"])
    video = open_source(str(tree / "2026-01-31" / "cam1.mp4"), options=options)
    assert video.probe().frame_shape == (8, 8, 1)
    csv_source = open_source(str(tree / "series" / "series_000.csv"), options=options)
    assert csv_source.probe().frame_shape == (1,)


def test_open_source_rejects_missing_and_unknown(tree):
    with pytest.raises(SourceNotFoundError, match=r"nothing\.mp4"):
        open_source(str(tree / "nothing.mp4"))
    with pytest.raises(SourceError, match=r"readme\.txt.*unsupported"):
        open_source(str(tree / "series" / "readme.txt"))
    with pytest.raises(SourceError, match=r"series.*neither images nor a Zarr"):
        open_source(str(tree / "series"))


def test_source_options_are_frozen_and_validated():
    options = SourceOptions(feature_columns=["a", "b"])
    assert options.feature_columns == ("a", "b")
    with pytest.raises(ValidationError):
        options.grayscale = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SourceOptions(resize=(0, 4))
    with pytest.raises(ValidationError):
        SourceOptions(colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("archive/2026-01-31/cam.mp4", "2026-01-31"),
        ("s3://bucket/2025-12-01/x/2026-01-31/cam.mp4", "2026-01-31"),  # innermost wins
        ("/data/date=2026-02-01/cam.mp4", "2026-02-01"),  # Hive style
        ("/data/2026-01-31.mp4", "2026-01-31"),  # the file's stem
        ("/data/2026-13-01/cam.mp4", None),  # no month 13
        ("/data/cam-2026-01-31.mp4", None),  # not a whole component
        ("/data/cam.mp4", None),
    ],
)
def test_partition_of(uri, expected):
    assert partition_of(uri) == expected


def test_discover_and_read_from_s3(s3, s3_options, video_file, tmp_path):
    fs, prefix = s3
    fs.put_file(video_file.path, f"{prefix}/2026-01-31/cam.mp4")
    fs.put_file(
        str(Path(video_file.path).with_suffix("").with_suffix(".labels.npy")),
        f"{prefix}/2026-01-31/cam.labels.npy",
    )
    np.save(tmp_path / "a.npy", np.arange(12, dtype=np.int32).reshape(6, 2))
    fs.put_file(str(tmp_path / "a.npy"), f"{prefix}/arrays/a.npy")
    for image in synth_image_folder(tmp_path / "imgs", frames=3):
        fs.put_file(image, f"{prefix}/imgs/{Path(image).name}")

    found = discover([f"s3://{prefix}/"], storage_options=s3_options)
    assert found == [
        f"s3://{prefix}/2026-01-31/cam.mp4",
        f"s3://{prefix}/arrays/a.npy",
        f"s3://{prefix}/imgs",
    ]
    assert discover([f"s3://{prefix}/*/*.npy"], storage_options=s3_options) == [found[1]]

    video = open_source(found[0], storage_options=s3_options)
    probe = video.probe()
    assert probe.partition == "2026-01-31" and probe.length == 40
    assert probe.fingerprint.startswith("etag:")  # no download needed to fingerprint
    assert sum(len(b.frames) for b in video.blocks(16)) == 40

    array = open_source(found[1], storage_options=s3_options)
    np.testing.assert_array_equal(
        next(array.blocks(10, start=2)).frames, np.arange(4, 12).reshape(4, 2)
    )

    images = open_source(found[2], storage_options=s3_options)
    assert images.probe().length == 3 and next(images.blocks(3)).frames.shape == (3, 32, 32, 3)

    with pytest.raises(SourceNotFoundError, match="missing"):
        discover([f"s3://{prefix}/missing/"], storage_options=s3_options)


def test_open_source_accepts_any_options_object(tree):
    class Partial:  # e.g. a config model that has only some of the fields
        grayscale = True

    source = open_source(str(tree / "2026-01-31" / "cam1.mp4"), options=Partial())
    assert source.probe().frame_shape == (32, 32, 1)
    assert isinstance(
        open_source(str(tree / "series" / "store.zarr"), options=Partial()), ZarrArraySource
    )
