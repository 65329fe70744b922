"""Windowed (stateless) training benchmark: windows from the store, and peak memory.

Run alone: ``python -m benchmarks.windowed [--quick]``.

- W1, windows/s: ``WindowEngine.train_step`` fed by the production window dataset
  (:func:`segflow.windowed.window_dataset`: pools of rows read from a Zarr store, windows cut
  in the graph) against the same model and train step on prebuilt in-memory batches of
  windows drawn at random (``sliding_window_view`` of the same arrays, copied into tensors:
  the compute bound). 256 float32 features, LSTM 128, ``time_steps`` 32, batches of 64
  windows, shuffled on both sides; one process, so the same TensorFlow threads for both.
  Each round trains :data:`W1_STEPS` steps a side (a few seconds); every store round is a
  fresh epoch's dataset, built before the round and iterated inside it (its iterator, first
  pool read and all), so nothing is read ahead while the memory side runs. The step is
  traced first and the store's files are in the page cache (the input-only pass). Sides
  alternate over :data:`W1_ROUNDS` rounds, the order flipping; the best of each is kept.
  Beside the goal: CPU microseconds per window of each side (what load changes least), and
  of the store's input alone (the tf.data pipeline iterated without training; its pools'
  Python reads). Goal >= 0.9.
- W2, peak RSS: a 1 GB float32 series (16 sequences of 2**16 rows x 256 features; 2**13
  rows each with ``--quick``) trained on windows of ``time_steps`` 64 (batches of 64,
  default pools) against streaming it statefully (``StreamingEngine`` + ``StepReader`` train
  steps, 16 lanes, segments of 64), each in a fresh process that reports its own peak
  (``VmHWM``), with the same small model (LSTM 16), so what differs is the input pipeline's
  memory. The stateful run streams every frame once. A windowed epoch costs N=64 times the
  LSTM steps (every window is its own 64-step pass), far beyond the time budget, so the
  windowed run trains the first :data:`RSS_POOLS` pools of a shuffled epoch (pools read from
  all over the series; memory plateaus once the pipeline holds a pool and reads the next)
  and reports how many windows it trained. Goal: windowed <= 1.2x stateful.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import Goal, Target, finish, peak_rss_bytes

FEATURES = 256
UNITS = 128
TIME_STEPS = 32
BATCH = 64
RSS_TIME_STEPS = 64
RSS_BATCH = 64
RSS_UNITS = 16
RSS_SEQUENCES = 16
#: W1: optimizer steps per timed round (a few seconds of training each), and rounds per side.
W1_STEPS = 150
W1_ROUNDS = 5
W1_STEPS_QUICK = 40
#: Pools of an epoch the windowed run of W2 trains on.
RSS_POOLS = 4
SEQUENCE = "series"

#: W1: windows/s from the store over windows/s from prebuilt in-memory tensors.
STORE_VS_MEMORY = Target("W1 windowed train store / memory windows/s", ">=", 0.9)
#: W2: peak RSS of windowed training over that of streaming the same series statefully.
RSS_VS_STATEFUL = Target("W2 peak RSS windowed / stateful, time_steps 64", "<=", 1.2)
GOALS = (STORE_VS_MEMORY, RSS_VS_STATEFUL)


# -- W1: windows/s ----------------------------------------------------------------------------


def train_loop(engine: Any, batches: Any) -> int:
    """Run ``engine.train_step`` on every ``(inputs, labels)``; return the windows trained."""
    windows = 0
    for inputs, labels in batches:
        sums = engine.train_step(inputs["frames"], inputs["mask"], labels)
        windows += int(sums["count"])
    return windows


def memory_batches(arrays: list[np.ndarray], labels: list[np.ndarray], steps: int) -> list[Any]:
    """``steps`` batches of ``BATCH`` windows drawn at random from all the windows of the
    arrays (``sliding_window_view`` of each), each batch copied into tensors.

    Only the batches are materialised, not every window of the arrays.
    """
    import tensorflow as tf
    from numpy.lib.stride_tricks import sliding_window_view

    views = [np.moveaxis(sliding_window_view(a, TIME_STEPS, axis=0), -1, 1) for a in arrays]
    which = np.concatenate([np.full(len(v), i) for i, v in enumerate(views)])
    where = np.concatenate([np.arange(len(v)) for v in views])
    order = np.random.default_rng(0).permutation(len(which))[: steps * BATCH]
    if len(order) < steps * BATCH:
        raise ValueError(f"{steps} batches need {steps * BATCH} windows, got {len(order)}")
    out = []
    for lo in range(0, len(order), BATCH):
        pick = order[lo : lo + BATCH]
        x = np.stack([views[which[k]][where[k]] for k in pick])
        y = np.array([labels[which[k]][where[k] + TIME_STEPS - 1] for k in pick], np.float32)
        inputs = {"frames": tf.convert_to_tensor(x), "mask": tf.ones(x.shape[:2], tf.bool)}
        out.append((inputs, tf.convert_to_tensor(y)))
    return out


def cpu_seconds() -> float:
    """CPU seconds of this process so far, every thread (TensorFlow's and tf.data's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(run: Callable[[], int]) -> dict[str, float]:
    """Wall and CPU seconds of one call of ``run``, the windows it trained, the load after."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    windows = run()
    return {
        "wall": time.perf_counter() - wall,
        "cpu": cpu_seconds() - cpu,
        "windows": windows,
        "load": os.getloadavg()[0],
    }


def alternate_rounds(
    rounds: int, runs: dict[str, Callable[[int], int]]
) -> dict[str, list[dict[str, float]]]:
    """Every round of each run (``run(round)`` returns the windows trained); the runs take
    turns, the order flipping every round so neither always follows the other."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            out[name].append(measured(lambda: runs[name](round_)))  # noqa: B023
    return out


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Best windows/s and best (least) CPU seconds per window over the rounds."""
    return {
        "windows_per_s": max(r["windows"] / r["wall"] for r in rounds),
        "cpu_us_per_window": min(r["cpu"] / r["windows"] for r in rounds) * 1e6,
    }


def input_cost(reader: Any, epochs: int) -> dict[str, float]:
    """CPU microseconds per window of the store side's input alone, best of ``epochs``:
    the whole tf.data pipeline iterated without training, and its Python part (the pools'
    reads)."""
    from segflow.windowed import window_dataset

    pipeline, pools = float("inf"), float("inf")
    for epoch in range(epochs):
        dataset = window_dataset(reader, epoch=100 + epoch)
        started = cpu_seconds()
        windows = sum(int(labels.shape[0]) for _, labels in dataset)
        pipeline = min(pipeline, (cpu_seconds() - started) / windows * 1e6)
        started = cpu_seconds()
        for _ in reader.iter_pools(100 + epoch):
            pass
        pools = min(pools, (cpu_seconds() - started) / windows * 1e6)
    return {"pipeline_cpu_us_per_window": pipeline, "pool_reads_cpu_us_per_window": pools}


def run_w1(root: Path, quick: bool) -> dict[str, Any]:
    """W1: the window dataset from the store against prebuilt tensors, alternating rounds."""
    import tensorflow as tf

    from benchmarks.streaming import write_set
    from segflow.engine.chunks import open_sequence
    from segflow.engine.model import ModelConfig
    from segflow.windowed import WindowEngine, WindowReader, window_dataset

    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(1500, 3000, size=4 if quick else 8)]
    arrays = [np.cumsum(rng.standard_normal((n, FEATURES), np.float32) * 0.1, 0) for n in lengths]
    labels = [np.tanh(a[:, :4].sum(axis=1)).astype(np.float32) for a in arrays]
    repo, ids = write_set(root, "w1", arrays, labels, chunk=128)
    steps, rounds = (W1_STEPS_QUICK, 2) if quick else (W1_STEPS, W1_ROUNDS)
    config = ModelConfig(frame_shape=(FEATURES,), lstm_units=[UNITS], head="many_to_one")
    engine = WindowEngine(config, time_steps=TIME_STEPS, batch_size=BATCH)
    sequences = [open_sequence(repo, sid, with_labels=True) for sid in ids]
    reader = WindowReader(sequences, time_steps=TIME_STEPS, batch_size=BATCH, seed=0)
    if reader.num_batches <= steps:
        raise ValueError(f"{steps} steps a round need more batches than {reader.num_batches}")
    memory = memory_batches(arrays, labels, steps)
    del arrays, labels
    # Each store round is a fresh epoch's dataset, built (its functions traced) before the
    # round and iterated inside it: the round pays for its iterator, its first pool's read
    # and everything after; nothing is read ahead while the memory side runs.
    datasets = [window_dataset(reader, epoch=r).take(steps) for r in range(rounds)]
    train_loop(engine, memory[:2])  # trace the step (one trace serves every batch size)
    cost = input_cost(reader, 2 if quick else 3)  # also brings the store into the page cache
    runs = alternate_rounds(
        rounds,
        {
            "store": lambda r: train_loop(engine, datasets[r]),
            "memory": lambda r: train_loop(engine, memory),
        },
    )
    store, mem = best(runs["store"]), best(runs["memory"])
    return {
        "sequences": len(ids),
        "windows_per_epoch": reader.num_windows,
        "steps_per_round": steps,
        "rounds": rounds,
        "pool_batches": reader.plan.pool_batches,
        "tf_threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "each_round": runs,
        "store": store,
        "memory": mem,
        "input": cost,
        "windows_per_s": {"store": store["windows_per_s"], "memory": mem["windows_per_s"]},
        "ratio_store_vs_memory": store["windows_per_s"] / mem["windows_per_s"],
        # CPU per window is what load changes least: the store side's cost beyond the step.
        "cpu_ratio_memory_vs_store": mem["cpu_us_per_window"] / store["cpu_us_per_window"],
        "input_share_of_step_cpu": cost["pipeline_cpu_us_per_window"] / mem["cpu_us_per_window"],
    }


# -- W2: peak RSS -----------------------------------------------------------------------------


def write_series(root: Path, rows: int) -> Path:
    """16 sequences of ``rows`` x 256 float32 and a label per row, written block by block."""
    from storage.local import LocalStore
    from storage.sequences import SequenceMeta, SequenceRepository, array_member

    store = root / "w2"
    repo = SequenceRepository(LocalStore(store))
    rng = np.random.default_rng(1)
    for i in range(RSS_SEQUENCES):
        sid = f"{SEQUENCE}-{i:02d}"
        meta = SequenceMeta(segment_length=256, label_kind="per_frame")
        group = repo.create(
            sid,
            frame_shape=(FEATURES,),
            dtype="float32",
            meta=meta,
            label_shape=(),
            label_dtype="float32",
        )
        frames, labels = array_member(group, "frames"), array_member(group, "labels")
        frames.resize((rows, FEATURES))
        labels.resize((rows,))
        block = 2**14  # a multiple of the chunk: no chunk is read back and rewritten
        for lo in range(0, rows, block):
            x = rng.standard_normal((min(block, rows - lo), FEATURES), np.float32)
            frames[lo : lo + len(x)] = x
            labels[lo : lo + len(x)] = x[:, 0]
        repo.write_meta(sid, meta.replace(length=rows, complete=True, frames_written=rows))
    os.sync()
    return store


def rss_child(mode: str, store: str) -> None:
    """In a fresh process: train through the whole series one way; print a JSON summary."""
    import tensorflow as tf

    from segflow.engine.model import ModelConfig
    from storage.local import LocalStore
    from storage.sequences import SequenceRepository

    repo = SequenceRepository(LocalStore(Path(store)))
    ids = sorted(repo.ids())
    started = time.perf_counter()
    if mode == "windowed":
        from segflow.engine.chunks import open_sequence
        from segflow.windowed import WindowEngine, WindowReader, window_dataset

        head = "many_to_one"
        config = ModelConfig(frame_shape=(FEATURES,), lstm_units=[RSS_UNITS], head=head)
        engine = WindowEngine(config, time_steps=RSS_TIME_STEPS, batch_size=RSS_BATCH)
        sequences = [open_sequence(repo, sid, with_labels=True) for sid in ids]
        reader = WindowReader(sequences, time_steps=RSS_TIME_STEPS, batch_size=RSS_BATCH)
        steps = min(reader.num_batches, RSS_POOLS * reader.plan.pool_batches)
        units = train_loop(engine, window_dataset(reader).take(steps))
    else:
        from benchmarks.streaming import train_all
        from segflow.engine.engine import StreamingEngine
        from segflow.engine.reader import StepReader

        config = ModelConfig(frame_shape=(FEATURES,), lstm_units=[RSS_UNITS])
        lanes = len(ids)
        stateful = StreamingEngine(config, lanes=lanes, segment_length=RSS_TIME_STEPS)
        steps_reader = StepReader(
            repo, ids, lanes=lanes, segment_length=RSS_TIME_STEPS, with_labels=True
        )
        train_all(stateful, lambda: steps_reader.iter_batches())
        units = sum(steps_reader.lengths)
    del tf  # imported first, so both runs pay for the same framework
    seconds = time.perf_counter() - started
    print(json.dumps({"units": units, "seconds": seconds, "peak_rss": peak_rss_bytes()}))


def run_w2(root: Path, quick: bool) -> dict[str, Any]:
    """W2: peak RSS of each way of training on the series, each in its own process."""
    rows = 2**13 if quick else 2**16
    started = time.perf_counter()
    store = write_series(root, rows)
    write_seconds = time.perf_counter() - started
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    runs = {}
    for mode in ("stateful", "windowed"):
        command = [sys.executable, "-m", "benchmarks.windowed", "--child", mode, str(store)]
        try:
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        except subprocess.CalledProcessError as exc:
            sys.stderr.write(exc.stderr)
            raise
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "sequences": RSS_SEQUENCES,
        "rows_per_sequence": rows,
        "gigabytes": RSS_SEQUENCES * rows * FEATURES * 4 / 1e9,
        "write_seconds": write_seconds,
        "runs": runs,
        "ratio_rss_windowed_vs_stateful": runs["windowed"]["peak_rss"]
        / runs["stateful"]["peak_rss"],
    }


# -- main -------------------------------------------------------------------------------------


def goals(results: dict[str, Any]) -> list[Goal]:
    """Every goal, checked against the figures measured."""
    return [
        STORE_VS_MEMORY.check(results["w1"]["ratio_store_vs_memory"]),
        RSS_VS_STATEFUL.check(
            results["w2"]["ratio_rss_windowed_vs_stateful"],
            qualifier=f"{results['w2']['gigabytes']:.2g} GB",
        ),
    ]


def table(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows: measure, figure, baseline, ratio, goal."""
    w1, w2 = results["w1"], results["w2"]
    runs = w2["runs"]
    rows: list[list[Any]] = [
        [
            "W1 windows/s, store vs memory",
            w1["windows_per_s"]["store"],
            w1["windows_per_s"]["memory"],
            w1["ratio_store_vs_memory"],
            str(STORE_VS_MEMORY),
        ],
        [
            "W1 CPU us/window, store vs memory",
            w1["store"]["cpu_us_per_window"],
            w1["memory"]["cpu_us_per_window"],
            w1["cpu_ratio_memory_vs_store"],
            "-",
        ],
        [
            "W1 store input alone CPU us/window (pool reads)",
            w1["input"]["pipeline_cpu_us_per_window"],
            w1["input"]["pool_reads_cpu_us_per_window"],
            w1["input_share_of_step_cpu"],
            "-",
        ],
        [
            f"W2 peak RSS MB, windowed vs stateful, {w2['gigabytes']:.2g} GB",
            runs["windowed"]["peak_rss"] / 1e6,
            runs["stateful"]["peak_rss"] / 1e6,
            w2["ratio_rss_windowed_vs_stateful"],
            str(RSS_VS_STATEFUL),
        ],
        [
            "W2 windows trained vs frames streamed",
            runs["windowed"]["units"],
            runs["stateful"]["units"],
            runs["windowed"]["units"] / runs["stateful"]["units"],
            "-",
        ],
    ]
    return ["measure", "figure", "baseline", "ratio", "goal"], rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 2 rounds (smoke run)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rss_child(*args.child)
        return 0
    import tensorflow  # noqa: F401 - imported before anything is timed

    results: dict[str, Any] = {"quick": args.quick, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(
        prefix="segflow-bench-", dir=os.environ.get("SEGFLOW_BENCH_DIR")
    ) as tmp:
        results["w1"] = run_w1(Path(tmp), args.quick)
        results["w2"] = run_w2(Path(tmp), args.quick)
    results["load_average_after"] = os.getloadavg()
    load = (
        f"1-minute load average before/after: {results['load_average_before'][0]:.1f} / "
        f"{results['load_average_after'][0]:.1f} on {os.cpu_count()} CPUs"
    )
    return finish("windowed", results, goals(results), table(results), notes=[load])


if __name__ == "__main__":
    sys.exit(main())
