"""CsvSource: column resolution, streaming blocks, timestamps, labels, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segflow.errors import SourceError, SourceNotFoundError
from segflow.sources.csv import CsvSource
from segflow.synth import synth_series_csv


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _concat(source: CsvSource, block_frames: int, start: int = 0):
    blocks = list(source.blocks(block_frames, start))
    assert all(len(b.frames) == block_frames for b in blocks[:-1])
    assert [b.start for b in blocks] == list(
        range(start, start + block_frames * len(blocks), block_frames)
    )
    return blocks


@pytest.fixture
def series(tmp_path) -> str:
    (path,) = synth_series_csv(tmp_path, count=1, rows=57, features=3, seed=0)
    return path


def test_defaults_find_timestamp_label_and_features(series):
    source = CsvSource(series)
    assert source.columns() == {
        "features": ["f0", "f1", "f2"],
        "timestamp": "timestamp",
        "label": "label",
    }
    probe = source.probe()
    assert probe.frame_shape == (3,) and probe.dtype == np.float32
    assert probe.length is None  # unknown without reading the whole file
    assert probe.has_timestamps and probe.sample_interval == pytest.approx(0.1)
    assert probe.start_time == "2026-01-31T00:00:00"
    assert (probe.label_shape, probe.label_dtype) == ((), np.float32)


@pytest.mark.parametrize(
    ("block_frames", "start"), [(10, 0), (10, 3), (57, 0), (100, 0), (8, 56), (8, 57)]
)
def test_blocks_match_the_file(series, block_frames, start):
    rows = np.genfromtxt(
        series, delimiter=",", skip_header=1, usecols=(1, 2, 3, 4), dtype=np.float64
    )
    blocks = _concat(CsvSource(series), block_frames, start)
    if start >= 57:
        assert blocks == []
        return
    frames = np.concatenate([b.frames for b in blocks])
    assert frames.dtype == np.float32
    np.testing.assert_allclose(frames, rows[start:, :3], rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in blocks]), rows[start:, 3])
    # Timestamps count from the file's first row even when reading starts later.
    np.testing.assert_allclose(
        np.concatenate([b.timestamps for b in blocks]), np.arange(start, 57) * 0.1, atol=1e-9
    )


def test_explicit_columns_choose_and_order_features(tmp_path):
    path = _write(tmp_path / "s.csv", "t,a,b,c,y\n0.5,1,2,3,0\n1.0,4,5,6,1\n1.5,7,8,9,1\n")
    source = CsvSource(path, feature_columns=["c", "a"], timestamp_column="t", label_column="y")
    probe = source.probe()
    assert probe.frame_shape == (2,) and probe.start_time is None  # numeric seconds: no date
    assert probe.sample_interval == pytest.approx(0.5)
    (block,) = source.blocks(10)
    np.testing.assert_array_equal(block.frames, [[3, 1], [6, 4], [9, 7]])
    np.testing.assert_array_equal(block.labels, [0, 1, 1])
    np.testing.assert_allclose(block.timestamps, [0.0, 0.5, 1.0])


def test_without_timestamps_or_labels(tmp_path):
    path = _write(tmp_path / "s.csv", "x,y,name\n1,2,alpha\n3,4,beta\n\n")
    source = CsvSource(path)
    probe = source.probe()
    assert probe.frame_shape == (2,) and not probe.has_timestamps and probe.label_shape is None
    (block,) = source.blocks(5)  # the blank last line is skipped
    assert block.timestamps is None and block.labels is None
    np.testing.assert_array_equal(block.frames, [[1, 2], [3, 4]])


def test_tsv_and_timezones(tmp_path):
    path = _write(
        tmp_path / "s.tsv",
        "timestamp\tv\n2026-01-31T23:59:59Z\t1\n2026-02-01T00:00:01+00:00\t2\n",
    )
    source = CsvSource(path)
    assert source.probe().start_time == "2026-01-31T23:59:59+00:00"
    np.testing.assert_allclose(next(source.blocks(4)).timestamps, [0.0, 2.0])


def test_missing_column_names_it_the_file_and_the_available_ones(tmp_path):
    path = _write(tmp_path / "s.csv", "a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"s.csv.*'zz'.*\['a', 'b'\]"):
        CsvSource(path, feature_columns=["a", "zz"]).probe()
    with pytest.raises(SourceError, match=r"s.csv.*label column 'y'.*\['a', 'b'\]"):
        CsvSource(path, label_column="y").probe()
    with pytest.raises(SourceError, match=r"timestamp column 'when'"):
        CsvSource(path, timestamp_column="when").probe()


def test_non_numeric_value_names_file_line_and_column(tmp_path):
    lines = ["a,b"] + [f"{i},{i}" for i in range(30)]
    lines[25] = "24,oops"  # line 26 of the file
    path = _write(tmp_path / "s.csv", "\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=r"s.csv.*line 26.*column 'b'.*'oops'"):
        list(CsvSource(path).blocks(8))


def test_non_numeric_value_beyond_the_probe_window_fails_while_reading(tmp_path):
    lines = ["a"] + ["1.5"] * 1500 + ["x"]
    path = _write(tmp_path / "s.csv", "\n".join(lines) + "\n")
    source = CsvSource(path)
    source.probe()
    with pytest.raises(SourceError, match=r"line 1502.*column 'a'.*'x'"):
        list(source.blocks(500))


def test_ragged_row_is_rejected(tmp_path):
    path = _write(tmp_path / "s.csv", "a,b\n1,2\n3,4,5\n")
    with pytest.raises(SourceError, match=r"s.csv.*line 3.*3 fields, expected 2"):
        list(CsvSource(path).blocks(8))


def test_invalid_timestamp_is_rejected(tmp_path):
    path = _write(tmp_path / "s.csv", "timestamp,a\n2026-01-31T00:00:00,1\nyesterday,2\n")
    with pytest.raises(SourceError, match=r"line 3.*'timestamp'.*'yesterday'"):
        CsvSource(path).probe()


def test_nan_values_pass_through_for_the_ingest_loop_to_judge(tmp_path):
    path = _write(tmp_path / "s.csv", "a\n1\nnan\n")
    assert np.isnan(next(CsvSource(path).blocks(4)).frames[1, 0])


def test_blank_feature_cells_are_missing_values(tmp_path):
    # As weather records have them: a sensor down for a day, in the first row too.
    text = "date,pressure,rain_mm,label\n2020-01-01,,0.5,1\n2020-01-02,1013.2, ,0\n"
    text += "2020-01-03,1009.8,2.0,\n"
    source = CsvSource(_write(tmp_path / "w.csv", text), timestamp_column="date")
    assert source.columns()["features"] == ["pressure", "rain_mm"]
    (block,) = source.blocks(8)
    np.testing.assert_array_equal(
        np.isnan(block.frames), [[True, False], [False, True], [False, False]]
    )
    assert block.frames[2].tolist() == pytest.approx([1009.8, 2.0])
    assert np.isnan(block.labels[2])  # a blank label: unlabelled


def test_a_text_cell_in_a_gappy_block_is_still_named(tmp_path):
    path = _write(tmp_path / "s.csv", "a,b\n1,\n2,oops\n")
    with pytest.raises(SourceError, match=r"line 3.*column 'b'.*'oops'"):
        list(CsvSource(path).blocks(8))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "zero-length.*no header"),  # empty file
        ("a,b,label\n", "zero-length.*no data rows"),  # header only
        ("name,city\nx,y\n", "no numeric feature column"),  # nothing numeric
    ],
)
def test_empty_or_featureless_files_are_rejected(tmp_path, text, message):
    path = _write(tmp_path / "s.csv", text)
    with pytest.raises(SourceError, match=f"s.csv.*{message}"):
        CsvSource(path).probe()


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"absent\.csv"):
        CsvSource(str(tmp_path / "absent.csv")).probe()
