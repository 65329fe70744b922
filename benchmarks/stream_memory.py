"""Streaming memory benchmark: peak RSS while streaming a 3 GB sequence, and at 4x its length.

Run alone: ``python -m benchmarks.stream_memory [--quick]``.

The classic recipe's example: one sequence of 1000 frames of 1000x1000x3 uint8 (3 GB) in a
Zarr store on disk, streamed through the engine (``make_dataset`` + ``StreamingEngine.predict``)
with one lane, segments of 10 frames, and a downsampling encoder (average pooling by 25:
40x40x3 per frame, then an LSTM of 32 units). Each run is a fresh process whose peak RSS
(``VmHWM``; ``ru_maxrss`` would carry the parent's peak across exec) is what the goal is
about: <= 1.5 GB, and the 4000-frame sequence (12 GB) within 10% of the 1000-frame one, i.e.
memory does not grow with length.

The store is written block by block (never the whole sequence in memory): smooth gradients
that shift one pixel per frame, blosc-lz4, so the store stays far smaller than the frames.
It is deleted at the end. ``--quick`` uses 250x250x3 frames (pool 25 gives 10x10x3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import Goal, Target, finish, peak_rss_bytes

SEGMENT = 10
POOL = 25
UNITS = 32
FRAMES_1X = 1000
SEQUENCE = "long"

#: Peak RSS of one streaming run (checked on the 1x and the 4x run).
PEAK_RSS_MB = Target("peak RSS MB", "<=", 1500)
#: Peak RSS does not grow with the sequence's length.
RSS_4X_VS_1X = Target("peak RSS 4x / 1x", "<=", 1.1)
GOALS = (PEAK_RSS_MB, RSS_4X_VS_1X)


def gradient_base(shape: tuple[int, int, int]) -> np.ndarray:
    """Frame 0: a diagonal gradient, each channel offset (uint8 wraps, so it stays smooth)."""
    h, w, c = shape
    base = np.add.outer(np.arange(h), np.arange(w)) % 256
    return (base[..., None] + 85 * np.arange(c)).astype(np.uint8)


def gradient_frames(base: np.ndarray, start: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` with frames ``[start, start + len(out))``: the gradient moved per frame."""
    for i in range(len(out)):
        np.subtract(base, np.uint8((start + i) % 256), out=out[i])
    return out


def write_store(root: Path, frames: int, shape: tuple[int, int, int]) -> tuple[float, int]:
    """Write one complete sequence block by block; return (seconds, bytes on disk)."""
    from storage.local import LocalStore
    from storage.sequences import SequenceMeta, SequenceRepository, array_member

    started = time.perf_counter()
    repo = SequenceRepository(LocalStore(root))
    meta = SequenceMeta(segment_length=SEGMENT)
    group = repo.create(SEQUENCE, frame_shape=shape, dtype="uint8", meta=meta)
    array = array_member(group, "frames")
    array.resize((frames, *shape))
    base = gradient_base(shape)
    block = 2 * SEGMENT  # whole chunks per write, so no chunk is read back and rewritten
    buffer = np.empty((block, *shape), dtype=np.uint8)  # reused: no page faults per block
    for start in range(0, frames, block):
        stop = min(frames, start + block)
        array[start:stop] = gradient_frames(base, start, buffer[: stop - start])
    repo.write_meta(SEQUENCE, meta.replace(length=frames, complete=True, frames_written=frames))
    seconds = time.perf_counter() - started
    return seconds, sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def stream_child(store: str) -> None:
    """In a fresh process: stream the sequence through the engine; print a JSON summary."""
    import psutil

    from segflow.engine.engine import StreamingEngine
    from segflow.engine.model import ModelConfig
    from segflow.engine.pipeline import StepReader, reader_dataset
    from storage.local import LocalStore
    from storage.sequences import SequenceRepository

    repo = SequenceRepository(LocalStore(Path(store)))
    reader = StepReader(repo, [SEQUENCE], lanes=1, segment_length=SEGMENT)
    config = ModelConfig(
        frame_shape=reader.frame_shape,
        input_dtype="uint8",
        encoder="avgpool",
        pool_size=POOL,
        lstm_units=[UNITS],
    )
    engine = StreamingEngine(config, lanes=1, segment_length=SEGMENT)
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    streamed = 0
    for _, predictions in engine.predict(reader_dataset(reader), reader.steps(), reader.lengths):
        streamed += len(predictions)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "frames": streamed,
                "seconds": seconds,
                "rss_before_stream": rss_before,
                "peak_rss": peak_rss_bytes(),
            }
        )
    )


def measure(workdir: Path, frames: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    """Write a ``frames``-long sequence, stream it in a fresh process, delete it."""
    store = workdir / f"store-{frames}"
    write_seconds, disk_bytes = write_store(store, frames, shape)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.stream_memory", "--child", str(store)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr)
        raise
    finally:
        shutil.rmtree(store)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        **child,
        "frames_per_s": child["frames"] / child["seconds"],
        "gigabytes": frames * int(np.prod(shape)) / 1e9,
        "store_megabytes": disk_bytes / 1e6,
        "write_seconds": write_seconds,
    }


def goals(runs: dict[str, dict[str, Any]], ratio: float) -> list[Goal]:
    """Every goal, checked against the figures measured."""
    return [
        *(PEAK_RSS_MB.check(run["peak_rss"] / 1e6, qualifier=name) for name, run in runs.items()),
        RSS_4X_VS_1X.check(ratio),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="250x250x3 frames (smoke run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stream_child(args.child)
        return 0
    shape = (250, 250, 3) if args.quick else (1000, 1000, 3)
    with tempfile.TemporaryDirectory(
        prefix="segflow-bench-", dir=os.environ.get("SEGFLOW_BENCH_DIR")
    ) as tmp:
        runs = {f"{k}x": measure(Path(tmp), k * FRAMES_1X, shape) for k in (1, 4)}
    one, four = runs["1x"], runs["4x"]
    results = {
        "frame_shape": list(shape),
        "segment_length": SEGMENT,
        "pool_size": POOL,
        "lstm_units": UNITS,
        "lanes": 1,
        "runs": runs,
        "ratio_4x_vs_1x": four["peak_rss"] / one["peak_rss"],
    }
    rows = [
        [
            f"{k} ({r['frames']} frames, {r['gigabytes']:.2g} GB)",
            r["peak_rss"] / 1e6,
            r["rss_before_stream"] / 1e6,
            r["frames_per_s"],
            r["store_megabytes"],
        ]
        for k, r in runs.items()
    ]
    rows.append(["peak RSS 4x / 1x", f"{results['ratio_4x_vs_1x']:.3f}", "-", "-", "-"])
    headers = [
        f"run (goal: peak {PEAK_RSS_MB} MB, 4x/1x {RSS_4X_VS_1X})",
        "peak RSS MB",
        "RSS before MB",
        "frames/s",
        "store MB",
    ]
    return finish("stream_memory", results, goals(runs, results["ratio_4x_vs_1x"]), (headers, rows))


if __name__ == "__main__":
    sys.exit(main())
