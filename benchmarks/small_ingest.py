"""Small-source ingest: sequences/s of segflow's ingest against a plain ``zarr`` loop.

Run alone: ``python -m benchmarks.small_ingest [--quick] [--count N] [--no-flow]``.

The same few hundred small ``.npy`` recordings (noisy float32 feature series of variable
length, about 1 kB each) are written

* by a plain loop calling zarr directly: ``np.load`` and ``group.create_array(data=...)`` per
  file into one group (no fingerprints, checks, resumability or completion markers);
* by segflow's core, :func:`segflow.ingest.batch.ingest_many` (what the ingest task runs), into
  a fresh store;
* by the ingest flow (``flows/ingest.py``) against a local Prefect server, once, at the end.

The plain loop and the core alternate for a few rounds (fresh stores each time) and the best
of each is kept, so a noisy neighbour does not bias one side; the median of the per-round
ratios is reported beside it. Goal: core/plain >= 1.0. The flow's figure is reported (its
Prefect overhead is a flow run, a discovery task, a few ingest tasks and a summary artifact).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from benchmarks._common import Target, finish

#: segflow's core ingest against the plain zarr loop, in sequences per second.
CORE_VS_PLAIN = Target("core / plain zarr loop, sequences/s", ">=", 1.0)
GOALS = (CORE_VS_PLAIN,)
SEGMENT = 16


def make_sources(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` small noisy recordings of 8 features and 10 to 50 frames each."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        frames = int(rng.integers(10, 51))
        data = rng.normal(size=(frames, 8)).astype("float32")
        path = folder / f"rec-{index:04d}.npy"
        np.save(path, data)
        paths.append(path)
    return paths


def plain_loop(paths: list[Path], root: Path) -> float:
    """Seconds to write every file as one array of a zarr group, calling zarr directly."""
    started = time.perf_counter()
    group = zarr.open_group(str(root), mode="w")
    for path in paths:
        data = np.load(path)
        group.create_array(path.stem, data=data, chunks=(SEGMENT, *data.shape[1:]))
    return time.perf_counter() - started


def segflow_core(paths: list[Path], root: Path) -> float:
    """Seconds for segflow's core ingest of the same files (as the ingest task runs it)."""
    from segflow.config import IngestParams, StoreConfig, WriteConfig
    from segflow.ingest.batch import ingest_many

    params = IngestParams(
        sources=[str(paths[0].parent)],
        store=StoreConfig(url=str(root)),
        write=WriteConfig(segment_length=SEGMENT),
    )
    started = time.perf_counter()
    results = ingest_many([(str(p), p.stem) for p in paths], params)
    seconds = time.perf_counter() - started
    _check(results, len(paths))
    return seconds


def segflow_flow(paths: list[Path], root: Path) -> float:
    """Seconds for the ingest flow on the same files, server start excluded."""
    from flows.ingest import ingest
    from flows.settings import in_process_runs
    from segflow.config import IngestParams, StoreConfig, WriteConfig

    params = IngestParams(
        sources=[str(p) for p in paths],
        store=StoreConfig(url=str(root)),
        write=WriteConfig(segment_length=SEGMENT),
    )
    started = time.perf_counter()
    with in_process_runs():
        report = ingest(params)
    seconds = time.perf_counter() - started
    _check(report.results, len(paths))
    return seconds


def _check(results: object, count: int) -> None:
    statuses = [getattr(r, "status", None) for r in results]  # type: ignore[attr-defined]
    if statuses != ["written"] * count:
        raise SystemExit(f"Expected {count} sequences written, got statuses {set(statuses)}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer files and rounds.")
    parser.add_argument("--count", type=int, default=None, help="Recordings (default 480).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds.")
    parser.add_argument("--no-flow", action="store_true", help="Skip the ingest flow's run.")
    args = parser.parse_args()
    count = args.count or (120 if args.quick else 480)
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="segflow-small-ingest-") as tmp:
        work = Path(tmp)
        paths = make_sources(work / "sources", count)
        segflow_core(paths[:4], work / "warmup")  # imports and zarr's first-use costs
        times: dict[str, list[float]] = {"plain": [], "core": []}
        for round_ in range(rounds):
            for name, run in (("core", segflow_core), ("plain", plain_loop)):
                target = work / f"{name}-{round_}"
                times[name].append(run(paths, target))
                shutil.rmtree(target)
        flow_seconds = float("nan") if args.no_flow else _flow_once(paths, work)
    best = {k: min(v) for k, v in times.items()}
    rate = {k: count / v for k, v in best.items()}
    ratio = rate["core"] / rate["plain"]
    median = statistics.median(p / c for p, c in zip(times["plain"], times["core"], strict=True))
    flow_rate = count / flow_seconds
    rows = [
        ["plain zarr loop", count, best["plain"], rate["plain"], 1.0],
        ["segflow core (ingest_many)", count, best["core"], rate["core"], ratio],
        ["segflow ingest flow", count, flow_seconds, flow_rate, flow_rate / rate["plain"]],
    ]
    return finish(
        "small_ingest",
        {
            "count": count,
            "seconds": times,
            "flow_seconds": flow_seconds,
            "sequences_per_second": {**rate, "flow": flow_rate},
            "core_vs_plain_best": ratio,
            "core_vs_plain_median": median,
        },
        [CORE_VS_PLAIN.check(ratio)],
        (["writer", "sequences", "seconds", "sequences/s", "vs plain"], rows),
        notes=[f"core / plain, median of {rounds} rounds: {median:.2f}"],
    )


def _flow_once(paths: list[Path], work: Path) -> float:
    from benchmarks.orchestration import free_port, local_server, quiet_prefect

    quiet_prefect(work)
    with local_server(free_port()):
        segflow_flow(paths[:4], work / "flow-warmup")
        return segflow_flow(paths, work / "flow")


if __name__ == "__main__":
    raise SystemExit(main())
