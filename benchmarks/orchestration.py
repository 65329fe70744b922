"""Orchestration overhead: the demo as Prefect flows against the same work as plain calls.

Run alone: ``python -m benchmarks.orchestration [--quick]``.

Both sides do the same work in the same process: synthesize videos, ingest them, train the
carried-state and the reset-every-segment models, predict the held-out videos, score and
plot. The flow side runs ``flows/demo.py:demo`` against a Prefect server that is already up
(started once by the script, as a deployment would find it); the plain side calls the core
functions directly. A warm-up pass first pays TensorFlow's one-time costs, then the two sides
alternate. Goal: flows take at most 5% longer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="segflow-bench-prefect-"))

from benchmarks._common import print_table, write_results  # noqa: E402
from segflow.config import DemoParams  # noqa: E402


def plain_demo(params: DemoParams) -> dict[str, float]:
    """The demo's work as plain function calls (no Prefect)."""
    from flows.demo import _train_params
    from segflow.config import (
        CheckpointConfig,
        IngestParams,
        PredictParams,
        SelectionConfig,
        StoreConfig,
        StreamConfig,
    )
    from segflow.ingest.batch import ingest_one
    from segflow.predicting import predict
    from segflow.report import plot_sequence, score
    from segflow.training import train
    from storage import open_store
    from storage.predictions import PredictionRepository
    from storage.sequences import SequenceRepository
    from tasks.demo import synth_task

    root = Path(params.workdir).resolve()
    where = {k: str(root / k) for k in ("sources", "store", "checkpoints", "tensorboard")}
    paths = synth_task.fn(where["sources"], params)  # the task's own function, no Prefect
    store = StoreConfig(url=where["store"])
    ingest = IngestParams(sources=paths, store=store, write={"segment_length": params.segment_length})
    ids = sorted(Path(p).stem for p in paths)
    for path, sequence_id in zip(sorted(paths), ids):
        ingest_one(path, sequence_id, ingest)
    held_out = max(1, len(ids) // 4)
    train_ids, val_ids = ids[:-held_out], ids[-held_out:]
    for tag, reset in (("demo-carried", False), ("demo-reset", True)):
        train(_train_params(params, where, store, train_ids, val_ids, tag, reset))
    predict(
        PredictParams(
            store=store, selection=SelectionConfig(ids=val_ids),
            checkpoints=CheckpointConfig(url=where["checkpoints"]), model_tag="demo-carried",
            stream=StreamConfig(lanes=params.lanes, segment_length=params.segment_length),
        )
    )
    sequences = SequenceRepository(open_store(where["store"]))
    predictions = PredictionRepository(open_store(where["store"]))
    result = score(val_ids, lambda i: predictions.read("demo-carried", i), lambda i: sequences.labels(i)[:])
    labels = sequences.labels(val_ids[0])[:].reshape(-1)
    plot_sequence(root / "plot.png", val_ids[0], labels, {"carried": predictions.read("demo-carried", val_ids[0])[:, 0]})
    return {"accuracy": result.accuracy}


def flow_demo(params: DemoParams) -> dict[str, float]:
    """The demo flow, as ``segflow demo`` runs it."""
    from flows.demo import demo

    return demo(params)["metrics"]


def timed(run, params: DemoParams) -> float:
    started = time.perf_counter()
    run(params)
    seconds = time.perf_counter() - started
    shutil.rmtree(params.workdir, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A smaller demo (smoke run).")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds.")
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    base = DemoParams(videos=32, frames=48, epochs=3) if args.quick else DemoParams()
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        params = lambda name: base.model_copy(update={"workdir": str(Path(tmp) / name)})  # noqa: E731
        timed(plain_demo, params("warmup"))
        times: dict[str, list[float]] = {"plain": [], "flow": []}
        for round_ in range(args.rounds):
            for name, run in (("flow", flow_demo), ("plain", plain_demo)):
                times[name].append(timed(run, params(f"{name}-{round_}")))
    best = {k: min(v) for k, v in times.items()}
    overhead = best["flow"] / best["plain"] - 1
    path = write_results(
        "orchestration",
        {"demo": base.model_dump(), "seconds": times, "best": best, "overhead": overhead},
    )
    print(f"results: {path}")
    print_table(
        ["measure", "seconds", "baseline", "overhead", "goal"],
        [["demo as flows vs plain calls", best["flow"], best["plain"], f"{overhead:+.1%}", "<= +5%"]],
    )


if __name__ == "__main__":
    main()
