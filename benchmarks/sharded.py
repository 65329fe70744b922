"""Sharded prediction on a real Dask cluster: 2 workers of one core each against 1 worker.

Starts ``dask scheduler`` and ``dask worker`` processes (one thread each, each pinned to one
core with ``taskset``; TensorFlow and BLAS limited to one thread), a Prefect server
(``segflow server start``), and predicts the same local store with the predict flow joined
to the cluster by address: once with 1 worker, once with 2. Each configuration is warmed up
first (workers import TensorFlow and keep the model), then timed with ``recompute`` (every
sequence predicted from frame 0 again). Reports the speed-up (goal >= 1.8) and the
orchestration cost: the flow's wall time minus its slowest shard's own time, per shard.

Run: ``python -m benchmarks.sharded [--quick]``. Needs 2 cores; figures on a shared machine
are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks._common import Target, finish
from benchmarks.orchestration import free_port, local_server, quiet_prefect

SPEEDUP = Target("speed-up, 2 workers / 1 worker", ">=", 1.8)
GOALS = (SPEEDUP,)
TAG = "bench"


def make_data(root: Path, sequences: int, frames: int) -> tuple[str, str]:
    """Noisy sequences of uneven lengths and a seeded model; return (store, checkpoints)."""
    from segflow.config import ModelConfig
    from segflow.engine.engine import StreamingEngine
    from segflow.registry import export_model
    from storage import open_store
    from storage.sequences import SequenceRepository
    from tests.engine.store_helpers import write_sequence

    repo = SequenceRepository(open_store(root / "data"))
    rng = np.random.default_rng(0)
    for i in range(sequences):
        length = int(frames * rng.uniform(0.7, 1.3))
        data = rng.normal(size=(length, 16)).astype(np.float32)
        write_sequence(repo, f"s{i:03d}", data, chunk_length=32)
    config = ModelConfig(frame_shape=(16,), lstm_units=[64, 64], outputs=2)
    engine = StreamingEngine(config, lanes=1, segment_length=1, seed=0)
    export_model(open_store(root / "ckpt"), TAG, engine, config, meta={"checkpoint": "seeded"})
    return str(root / "data"), str(root / "ckpt")


@contextmanager
def cluster(workers: int, logs: Path) -> Iterator[str]:
    """A scheduler and ``workers`` one-thread workers, worker i pinned to core i."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    dask = str(Path(sys.executable).with_name("dask"))
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", str(port)]]
    for core in range(workers):
        worker = [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
        worker += ["--host", "127.0.0.1", "--memory-limit", "0", "--name", f"w{core}"]
        commands.append(["taskset", "-c", str(core % (os.cpu_count() or 1)), *worker])
    procs = []
    for i, command in enumerate(commands):
        with open(logs / f"{workers}-{i}.log", "wb") as log:
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a worker busy in TensorFlow may not stop
                proc.kill()
                proc.wait()


def timed_run(params: object) -> tuple[float, list[float]]:
    """The flow's wall seconds and each shard's own seconds."""
    from flows.predict import predict

    started = time.perf_counter()
    report = predict(params)  # type: ignore[arg-type]
    return time.perf_counter() - started, [s.seconds for s in report.shards]


def measure(store: str, ckpt: str, workers: int, logs: Path) -> dict[str, float]:
    from segflow.config import CheckpointConfig, PredictParams, StoreConfig, StreamConfig

    with cluster(workers, logs) as address:
        params = PredictParams(
            store=StoreConfig(url=store),
            checkpoints=CheckpointConfig(url=ckpt),
            model_tag=TAG,
            stream=StreamConfig(lanes=8, segment_length=32),
            dask_address=address,
            recompute=True,
        )
        timed_run(params)  # warm-up: imports, the model kept by each worker
        wall, shards = timed_run(params)
    return {"wall": wall, "slowest_shard": max(shards), "shards": len(shards)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Less data (a smoke run).")
    args = parser.parse_args()
    sequences, frames = (8, 400) if args.quick else (16, 1500)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        quiet_prefect(root)
        store, ckpt = make_data(root, sequences, frames)
        (root / "logs").mkdir()
        with local_server(free_port()):
            one = measure(store, ckpt, 1, root / "logs")
            two = measure(store, ckpt, 2, root / "logs")
        shutil.rmtree(root / "logs", ignore_errors=True)
    speedup = one["wall"] / two["wall"]
    compute = one["slowest_shard"] / two["slowest_shard"]
    rows = []
    for name, m in (("1 worker", one), ("2 workers", two)):
        overhead = m["wall"] - m["slowest_shard"]
        rows.append([name, m["wall"], m["slowest_shard"], overhead, overhead / m["shards"]])
    return finish(
        "sharded",
        {
            "sequences": sequences,
            "frames": frames,
            "one": one,
            "two": two,
            "speedup": speedup,
            "shard_speedup": compute,
        },
        [SPEEDUP.check(speedup)],
        (["run", "flow s", "slowest shard s", "orchestration s", "per shard s"], rows),
        notes=[
            f"speed-up {speedup:.2f}x (goal {SPEEDUP}); the shards alone {compute:.2f}x; "
            "measured on a shared machine: noisy.",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
