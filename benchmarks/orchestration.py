"""Orchestration overhead: the demo as Prefect flows against the same work as plain calls.

Run alone: ``python -m benchmarks.orchestration [--quick]``.

Both sides do the same work in the same process: synthesize videos, ingest them, train the
demo's three models (carried state, reset every segment, windowed), predict the held-out
videos, score and plot. The flow side runs ``flows/demo.py:demo`` as ``segflow demo`` does
(:func:`flows.settings.in_process_runs`), against the local server ``segflow server start``
starts (in a temporary home, on a free port, once, before the rounds); the plain side calls
the core functions directly. A warm-up pass first pays TensorFlow's one-time costs, then the
two sides alternate. Goal: flows take at most 5% longer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks._common import Target, finish
from segflow.config import DemoParams

#: The demo's wall time as flows over the same work as plain calls (best of the rounds).
FLOWS_VS_PLAIN = Target("demo seconds, flows / plain calls", "<=", 1.05)
GOALS = (FLOWS_VS_PLAIN,)


def plain_demo(params: DemoParams) -> dict[str, float]:
    """The demo's work as plain function calls (no Prefect)."""
    from flows.demo import MODELS, train_params
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
    write = {"segment_length": params.segment_length}
    ingest = IngestParams(sources=paths, store=store, write=write)
    ids = sorted(Path(p).stem for p in paths)
    for path, sequence_id in zip(sorted(paths), ids, strict=True):
        ingest_one(path, sequence_id, ingest)
    held_out = max(1, len(ids) // 4)
    train_ids, val_ids = ids[:-held_out], ids[-held_out:]
    for tag, kind in MODELS:
        train(train_params(params, where, store, train_ids, val_ids, tag, kind))
    predict(
        PredictParams(
            store=store,
            selection=SelectionConfig(ids=val_ids),
            checkpoints=CheckpointConfig(url=where["checkpoints"]),
            model_tag="demo-carried",
            stream=StreamConfig(lanes=params.lanes, segment_length=params.segment_length),
        )
    )
    sequences = SequenceRepository(open_store(where["store"]))
    predictions = PredictionRepository(open_store(where["store"]))

    def labels_of(sequence_id: str) -> np.ndarray:
        array = sequences.labels(sequence_id)
        assert array is not None, f"the demo's {sequence_id} has no labels"
        return np.asarray(array[:])

    result = score(val_ids, lambda i: predictions.read("demo-carried", i), labels_of)
    labels = labels_of(val_ids[0]).reshape(-1)
    carried = predictions.read("demo-carried", val_ids[0])[:, 0]
    plot_sequence(root / "plot.png", val_ids[0], labels, {"carried": carried})
    return {"accuracy": result.accuracy}


def flow_demo(params: DemoParams) -> dict[str, float]:
    """The demo flow, as ``segflow demo`` runs it."""
    from flows.demo import demo
    from flows.settings import in_process_runs

    with in_process_runs():
        return demo(params).metrics.to_json()


def timed(run: Callable[[DemoParams], object], params: DemoParams) -> float:
    started = time.perf_counter()
    run(params)
    seconds = time.perf_counter() - started
    shutil.rmtree(params.workdir, ignore_errors=True)
    return seconds


def quiet_prefect(home: Path) -> None:
    """Prefect for this process: warnings only, homes under ``home`` (before Prefect loads)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ["SEGFLOW_SERVER_HOME"] = str(home / "segflow")
    os.environ.pop("PREFECT_API_URL", None)


@contextmanager
def local_server(port: int) -> Iterator[str]:
    """``segflow server start`` on ``port`` for the block; its API URL is this process's."""
    command = [sys.executable, "-m", "segflow_cli", "server"]
    subprocess.run([*command, "start", "--port", str(port)], check=True)
    try:
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        yield os.environ["PREFECT_API_URL"]
    finally:
        subprocess.run([*command, "stop"], check=False)


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A smaller demo (smoke run).")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds.")
    args = parser.parse_args()
    base = DemoParams(videos=32, frames=48, epochs=3) if args.quick else DemoParams()
    with tempfile.TemporaryDirectory() as tmp:
        quiet_prefect(Path(tmp))
        with local_server(free_port()):
            params = lambda name: base.model_copy(update={"workdir": str(Path(tmp) / name)})  # noqa: E731
            timed(plain_demo, params("warmup"))
            times: dict[str, list[float]] = {"plain": [], "flow": []}
            for round_ in range(args.rounds):
                for name, run in (("flow", flow_demo), ("plain", plain_demo)):
                    times[name].append(timed(run, params(f"{name}-{round_}")))
    best = {k: min(v) for k, v in times.items()}
    overhead = best["flow"] / best["plain"] - 1
    goal = f"<= {FLOWS_VS_PLAIN.threshold - 1:+.0%}"
    return finish(
        "orchestration",
        {"demo": base.model_dump(), "seconds": times, "best": best, "overhead": overhead},
        [FLOWS_VS_PLAIN.check(best["flow"] / best["plain"])],
        (
            ["measure", "seconds", "baseline", "overhead", "goal"],
            [
                [
                    "demo as flows vs plain calls",
                    best["flow"],
                    best["plain"],
                    f"{overhead:+.1%}",
                    goal,
                ]
            ],
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
