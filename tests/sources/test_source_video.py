"""VideoSource: probing, block layout, transforms, the flash task, and damaged files."""

from __future__ import annotations

from pathlib import Path

import av
import fsspec
import numpy as np
import pytest

from segflow.errors import ConfigError, SourceError, SourceNotFoundError
from segflow.sources.video import VideoSource
from segflow.synth import synth_videos

FRAMES, SIZE, FPS = 40, 32, 25  # as written by the video_file fixture


def _decode_all(
    source: VideoSource, block_frames: int = 16, start: int = 0
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    blocks = list(source.blocks(block_frames, start))
    frames = np.concatenate([b.frames for b in blocks])
    times = np.concatenate([b.timestamps for b in blocks])
    return frames, times, [b.start for b in blocks]


def test_probe_describes_the_video(video_file):
    path = video_file.path
    probe = VideoSource(path).probe()
    assert probe.frame_shape == (SIZE, SIZE, 3)
    assert probe.dtype == np.uint8
    assert probe.length == FRAMES
    assert probe.frame_rate == pytest.approx(FPS)
    assert probe.start_time is not None and probe.start_time.startswith("2026-01-31T00:00:00")
    assert probe.has_timestamps
    assert probe.fingerprint.startswith("xxh3:") and probe.fingerprint.endswith(
        f"size={Path(path).stat().st_size}"
    )


def test_blocks_cover_every_frame_in_order_with_timestamps(video_file):
    frames, times, starts = _decode_all(VideoSource(video_file.path), block_frames=16)
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert starts == [0, 16, 32]
    np.testing.assert_allclose(times, np.arange(FRAMES) / FPS, atol=1e-6)


@pytest.mark.parametrize(
    ("start", "block_frames", "expected_starts"),
    [
        (0, 40, [0]),  # one block holds the whole video
        (10, 10, [10, 20, 30]),  # start aligned to the block size
        (5, 16, [5, 21, 37]),  # unaligned start: every block but the last is full
        (39, 8, [39]),  # only the last frame
        (40, 8, []),  # past the end: nothing
    ],
)
def test_blocks_from_a_start_offset_equal_the_full_decode(
    video_file, start, block_frames, expected_starts
):
    source = VideoSource(video_file.path)
    full, full_times, _ = _decode_all(source, block_frames=64)
    blocks = list(source.blocks(block_frames, start))
    assert [b.start for b in blocks] == expected_starts
    assert all(len(b.frames) == block_frames for b in blocks[:-1])
    if blocks:
        np.testing.assert_array_equal(np.concatenate([b.frames for b in blocks]), full[start:])
        # Timestamps stay relative to the video's first frame, not to the start offset.
        np.testing.assert_allclose(
            np.concatenate([b.timestamps for b in blocks]), full_times[start:]
        )


def test_resize_and_grayscale(video_file):
    source = VideoSource(video_file.path, resize=(8, 12), grayscale=True)
    assert source.probe().frame_shape == (8, 12, 1)
    frames, _, _ = _decode_all(source)
    assert frames.shape == (FRAMES, 8, 12, 1) and frames.dtype == np.uint8
    colour, _, _ = _decode_all(VideoSource(video_file.path))
    # Luma of a downscaled frame tracks the mean brightness of the colour frame.
    correlation = np.corrcoef(
        frames.reshape(FRAMES, -1).mean(1), colour.reshape(FRAMES, -1).mean(1)
    )
    assert correlation[0, 1] > 0.99


@pytest.mark.parametrize("resize", [(0, 4), (4,), (4, -1), (2.5, 3)])
def test_invalid_resize_is_rejected(video_file, resize):
    with pytest.raises(ConfigError, match="resize"):
        VideoSource(video_file.path, resize=resize)


def test_labels_follow_the_visible_flashes(video_file):
    path, labels = video_file.path, video_file.labels
    frames, _, _ = _decode_all(VideoSource(path))
    brightness = frames.reshape(FRAMES, -1).mean(axis=1)
    flash = brightness > 170
    assert 2 <= flash.sum() < FRAMES // 2  # some flashes, clearly separated from the scene
    assert brightness[~flash].max() < 150 and brightness[flash].min() > 200
    onsets = flash & ~np.concatenate([[False], flash[:-1]])
    np.testing.assert_array_equal(np.cumsum(onsets) % 2, labels)


def test_fsspec_url_reads_the_same_frames(video_file):
    path = video_file.path
    url = "memory://videos/clip.mp4"
    with fsspec.open(url, "wb") as handle:
        handle.write(Path(path).read_bytes())
    remote = VideoSource(url)
    assert remote.probe().fingerprint == VideoSource(path).probe().fingerprint
    np.testing.assert_array_equal(_decode_all(remote)[0], _decode_all(VideoSource(path))[0])


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"nope\.mp4"):
        VideoSource(str(tmp_path / "nope.mp4")).probe()


def test_zero_byte_video_is_zero_length(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.mp4.*zero-length"):
        VideoSource(str(empty)).probe()


def test_video_without_frames_is_rejected(tmp_path):
    path = tmp_path / "noframes.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 16, 16
        container.start_encoding()
    with pytest.raises(SourceError, match=r"noframes\.mp4"):
        VideoSource(str(path)).probe()


def test_text_file_named_mp4_is_rejected(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 50)
    with pytest.raises(SourceError, match=r"notes\.mp4"):
        VideoSource(str(path)).probe()


def _read_everything(path: Path) -> None:
    source = VideoSource(str(path))
    source.probe()
    for _ in source.blocks(8):
        pass


def test_truncated_video_raises_naming_the_file(video_copy):
    data = video_copy.read_bytes()
    video_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"clip\.mp4"):
        _read_everything(video_copy)


@pytest.mark.parametrize("where", [0.3, 0.5])
def test_overwritten_bytes_raise_naming_the_file(video_copy, where):
    data = bytearray(video_copy.read_bytes())
    middle = int(len(data) * where)
    data[middle : middle + 128] = np.random.default_rng(1).integers(0, 256, 128, np.uint8).tobytes()
    video_copy.write_bytes(bytes(data))
    with pytest.raises(SourceError, match=r"clip\.mp4"):
        _read_everything(video_copy)


@pytest.mark.parametrize(
    ("extension", "codec"), [(".mkv", "libx264"), (".avi", "mpeg4"), (".webm", "libvpx")]
)
def test_truncation_is_caught_in_other_containers(tmp_path, extension, codec):
    # mkv/webm carry a duration but no frame count; avi declares its frame count.
    (path,) = synth_videos(tmp_path, count=1, frames=100, fps=FPS, codec=codec, extension=extension)
    assert len(list(VideoSource(path).blocks(100))) == 1  # intact: reads fine
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=f"video_000{extension}.*(truncated|corrupt)"):
        _read_everything(Path(path))


def test_blocks_rejects_bad_arguments(video_file):
    source = VideoSource(video_file.path)
    with pytest.raises(ConfigError, match="block_frames"):
        next(source.blocks(0))
    with pytest.raises(ConfigError, match="start"):
        next(source.blocks(4, start=-1))


def test_partition_comes_from_the_path(video_file, tmp_path):
    day = tmp_path / "archive" / "2026-01-31"
    day.mkdir(parents=True)
    target = day / "cam.mp4"
    target.write_bytes(Path(video_file.path).read_bytes())
    assert VideoSource(str(target)).probe().partition == "2026-01-31"
