"""Streaming engine benchmark: 32 lanes from a Zarr store against the classic recipe and memory.

Run alone: ``python -m benchmarks.streaming [--quick]``.

Every figure comes from one process; runs of the two sides of a ratio alternate and the best
of each is kept, so a busy neighbour slows single runs instead of biasing one side. Step
functions are traced (and the store's files read once, so they sit in the page cache) before
anything is timed. Throughput counts real frames only (padding excluded). Data is stored as
an ingest writes it by default (float features uncompressed, uint8 video blosc-lz4), in time
chunks of 128 frames (features) or 64 (video); sequences of mixed lengths, more of them than
lanes, so lanes switch sequences mid-run.

- P1: segflow (``StepReader`` from the store, ``StreamingEngine.predict_step``, 32 lanes,
  segments of 32) against the classic recipe: a stateful Keras model with batch size 1,
  ``model.predict`` on each segment of each sequence, the state reset after each sequence.
  Same model (LSTM 128 over 256 float32 features, many_to_many, same weights: the outputs are
  checked equal), same data. The classic way runs on the first sequences only: its cost is
  per frame, so frames/s is comparable. ``predict_on_batch`` (a faster baseline than the
  recipe's ``predict``) is reported too. Goal: >= 100x.
- P2: the same engine fed from the store through the production path ("disk":
  ``StreamingEngine.stream``, the one loop of training, evaluation and prediction, which
  consumes the ``tf.data`` dataset of :func:`segflow.engine.dataset.reader_dataset`) against
  prebuilt batches already in memory as tensors (the compute bound), for (a) 256-dim feature
  vectors (goal >= 0.95) and (b) 64x64x3 uint8 frames through a conv encoder (filters 16,
  32; LSTM 128; goal >= 0.9). An extra row, "own loop", is the path ``stream`` had before
  tf.data (``StepReader.iter_batches`` in the caller's thread, the step in a worker thread),
  to show what the dataset costs or gains.
- P6: truncated-BPTT training (``stream(reader, "train")``) fed from the store against the
  same train step on prebuilt in-memory batches (256-dim features, per-frame regression
  labels). Goal >= 0.95.
- P7 and P8, the other cells (issue 11), measured like P2: the production path fed from the
  store against the same model on prebuilt in-memory tensors, predicting. P7: a GRU 128 over
  P2a's 256-dim features (goal >= 0.95). P8: the ``conv_lstm`` video model, ConvLSTM2D with 16
  filters over 32x32x3 uint8 frames pooled by 2 (goal >= 0.9); smaller frames than P2b's, as
  a ConvLSTM's step costs a convolution per frame and per state at full resolution. They run
  after P6, so the rows before them run exactly as they did before.

How "disk" builds batches (see :mod:`segflow.engine.dataset`): Python reads each chunk once
and, per group of up to 8 consecutive steps, copies the rows they use into one recycled
array per field and computes their gather indices with a few vectorised NumPy calls
(:mod:`segflow.engine.stepindex`); per step one ``numpy_function`` call hands those out and
``tf.gather`` builds the batch in a ``tf.data`` thread, so no Python runs per lane. The
engine keeps a dataset's iterator from one finished pass to the next, since building a
dataset and its iterator cost 0.05-0.5 s on this machine (several steps).

Measured (issue 10, second round; 2 CPUs shared with two engineers' test runs, load average
4-7, so only the ratios between rows of one run mean much; ``--quick`` runs have ~10 steps
per pass and swing by +-30%):

- before (per-lane Python assembly per step, a new dataset and iterator per pass): the
  previous engineer's full run at load 3.5-4.8, training 0.84-0.89 through ``stream``
  against 0.93-0.96 for the own loop; a quick run of that commit beside this one's at load
  5.5: P2a 0.69 (own loop 0.82), P2b 0.84 (0.70), P6 0.83 (0.75). The first step of a pass
  waited 0.15 s (building the dataset and its iterator).
- after, full run at load 4.9-6.5: P1 229x; P2a 0.72 (own loop 0.65); P2b 0.80 (0.81);
  P6 0.83 (0.78); its quick run at load 4.3-5.0: P2a 1.13, P2b 1.63 (the memory side hit
  by a neighbour's burst), P6 0.89. The first step of a pass waits about one step (0.03 s).
- Python's part without the model (``iter_groups`` over the full 256-d set, 59 steps of
  1 MB): ~1.25 ms of CPU per step, most of it reading chunks (file read into fresh
  ``bytes``, crc32c), against ~1.6 ms for the per-lane assembly of ``iter_batches``.

So "disk" now costs no more than the own loop did (it was 0.1-0.15 below it), and a pass
no longer starts by building a dataset. What remains between "disk" and "memory": Python
reading each chunk and copying the rows a group uses, plus one in-graph gather per step,
~1.5-2 ms of CPU per 1 MB step beside a ~20-30 ms model step. With the model using both
cores and the machine loaded 4-6 by other processes, every millisecond of it is taken from
the model, so the ratios measured here stay below the goals. What would remove most of what
is left: reading chunks straight into the group's array (``readinto`` on local files, an
``out=`` for the codecs in ``storage.chunks``), saving a copy and the page faults of fresh
buffers; and measuring on an idle machine, where the pipeline's thread runs on CPU the model
leaves idle between ops.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks._common import Goal, Target, finish

LANES = 32
SEGMENT = 32
FEATURES = 256
UNITS = 128
VIDEO_SHAPE = (64, 64, 3)
CLIP_SHAPE = (32, 32, 3)  # P8's ConvLSTM frames
CONV_FILTERS = 16

#: P1: segflow's frames/s over the classic recipe's (``model.predict`` per segment).
P1_VS_CLASSIC = Target("P1 segflow / classic predict frames/s", ">=", 100)
#: P2 and P6: fed from the store over fed from memory (the compute bound), per results key.
DISK_VS_MEMORY = {
    "p2_features": Target("P2a disk / memory frames/s, 256-d", ">=", 0.95),
    "p2_video": Target("P2b disk / memory frames/s, 64x64x3 conv", ">=", 0.9),
    "p6_train": Target("P6 TBPTT train disk / memory frames/s", ">=", 0.95),
    "p7_gru": Target("P7 GRU disk / memory frames/s, 256-d", ">=", 0.95),
    "p8_conv_lstm": Target("P8 ConvLSTM disk / memory frames/s, 32x32x3", ">=", 0.9),
}
GOALS = (P1_VS_CLASSIC, *DISK_VS_MEMORY.values())


# -- data -------------------------------------------------------------------------------------


def feature_frames(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random-walk 256-dim float32 feature vectors."""
    return np.cumsum(rng.standard_normal((n, FEATURES), dtype=np.float32) * 0.1, axis=0)


def video_frames(
    n: int, rng: np.random.Generator, shape: tuple[int, int, int] = VIDEO_SHAPE
) -> np.ndarray:
    """uint8 frames (64x64x3 by default): a smooth gradient that moves one pixel per frame,
    plus a little noise."""
    h, w, c = shape
    base = (np.add.outer(np.arange(h), np.arange(w)) * 2 % 256).astype(np.uint8)
    shifts = (np.arange(n) + rng.integers(0, w)) % w
    moving = np.stack([np.roll(base, s, axis=1) for s in shifts])[..., None]
    return moving + rng.integers(0, 8, size=(n, h, w, c), dtype=np.uint8)


def write_set(
    root: Path,
    name: str,
    frames: list[np.ndarray],
    labels: list[np.ndarray] | None = None,
    chunk: int = 64,
) -> tuple[Any, list[str]]:
    """Write sequences as an ingest would (its default compression, chunks of ``chunk``)."""
    from storage.local import LocalStore
    from storage.sequences import SequenceMeta, SequenceRepository, array_member

    repo = SequenceRepository(LocalStore(root / name))
    ids = []
    for i, x in enumerate(frames):
        sid = f"{name}-{i:03d}"
        kind: Literal["per_frame"] | None = None if labels is None else "per_frame"
        meta = SequenceMeta(segment_length=chunk, label_kind=kind)
        group = repo.create(
            sid,
            frame_shape=x.shape[1:],
            dtype=x.dtype,
            meta=meta,
            label_shape=None if labels is None else (),
            label_dtype="float32",
        )
        stored = array_member(group, "frames")
        stored.resize(x.shape)
        stored[:] = x
        if labels is not None:
            stored = array_member(group, "labels")
            stored.resize(labels[i].shape)
            stored[:] = labels[i]
        repo.write_meta(sid, meta.replace(length=len(x), complete=True, frames_written=len(x)))
        ids.append(sid)
    # Flush now: the kernel writing these files back during the timed runs would take CPU
    # from whichever side happens to run then.
    os.sync()
    return repo, ids


# -- timing -----------------------------------------------------------------------------------


def timed(run: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def alternate(
    rounds: int, runs: dict[str, Callable[[], Any]], repeats: dict[str, int] | None = None
) -> dict[str, float]:
    """Best (smallest) seconds of each run over ``rounds`` rounds, the runs taking turns.

    The order flips every round, so neither side is always the one after the other. A run
    named in ``repeats`` is timed that many times per round (for short runs next to long ones).
    """
    best = {name: float("inf") for name in runs}
    names = list(runs)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            for _ in range((repeats or {}).get(name, 1)):
                best[name] = min(best[name], timed(runs[name]))
    return best


def _predict_one(engine: Any, b: dict[str, Any]) -> Any:
    from segflow.engine.engine import as_tensor

    inputs = (as_tensor(b["frames"]), as_tensor(b["mask"]), as_tensor(b["reset"]))
    return engine.predict_step(*inputs).numpy()


def _train_one(engine: Any, b: dict[str, Any]) -> Any:
    from segflow.engine.engine import as_tensor

    names = ("frames", "mask", "reset", "labels", "ends")
    return engine.train_step(*(as_tensor(b[name]) for name in names))["count"].numpy()


def _consume(
    one: Callable[[Any, dict[str, Any]], Any],
    engine: Any,
    batches: Callable[[], Iterable[dict[str, Any]]],
    overlap: bool,
) -> None:
    from segflow.engine.engine import pipelined

    if overlap:  # as segflow's loops run: the next batch is read while a step runs
        for _ in pipelined(batches(), lambda b: one(engine, b)):
            pass
    else:  # the plain loop
        for b in batches():
            one(engine, b)


def predict_all(
    engine: Any, batches: Callable[[], Iterable[dict[str, Any]]], overlap: bool = True
) -> None:
    """Stream every batch through ``engine.predict_step``, results fetched (inputs through
    ``as_tensor``, a no-op for tensors, as in segflow's predict loop)."""
    _consume(_predict_one, engine, batches, overlap)


def train_all(
    engine: Any, batches: Callable[[], Iterable[dict[str, Any]]], overlap: bool = True
) -> None:
    """One TBPTT optimizer step per batch (as segflow's training loop runs them)."""
    _consume(_train_one, engine, batches, overlap)


def stream_all(engine: Any, reader: Any, mode: str) -> None:
    """Every step of ``reader`` through ``engine.stream`` (the production path), results
    fetched as the callers fetch them."""
    for _ in engine.stream(reader, mode):
        pass


def preloaded(reader: Any) -> list[dict[str, Any]]:
    """Every batch of ``reader``, copied into tensors held in memory (the compute bound)."""
    import tensorflow as tf

    return [
        {k: tf.convert_to_tensor(np.array(v)) for k, v in batch.items()}
        for batch in reader.iter_batches()
    ]


# -- P1: classic recipe -----------------------------------------------------------------------


def classic_model(weights: list[np.ndarray]) -> Any:
    """The classic recipe's model: batch size 1, stateful LSTM, one output per frame."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(batch_shape=(1, None, FEATURES)),
            keras.layers.LSTM(UNITS, stateful=True, return_sequences=True),
            keras.layers.Dense(1),
        ]
    )
    model.set_weights(weights)
    return model


def classic_stream(model: Any, sequences: list[np.ndarray], call: str) -> list[np.ndarray]:
    """Each sequence segment by segment through ``model.<call>``, state reset after each one."""
    outputs = []
    for seq in sequences:
        parts = []
        for start in range(0, len(seq), SEGMENT):
            x = seq[None, start : start + SEGMENT]
            y = model.predict(x, verbose=0) if call == "predict" else model.predict_on_batch(x)
            parts.append(np.asarray(y)[0])
        outputs.append(np.concatenate(parts))
        model.layers[0].reset_state()  # Keras 2's model.reset_states()
    return outputs


def segflow_outputs(engine: Any, reader: Any, count: int) -> list[np.ndarray]:
    """The engine's per-sequence predictions of the first ``count`` sequences."""
    from segflow.engine.dataset import reader_dataset

    done = dict(engine.predict(reader_dataset(reader), reader.steps(), reader.lengths))
    return [done[i] for i in range(count)]


def run_p1(
    engine: Any, reader: Any, arrays: list[np.ndarray], subset: int, rounds: int
) -> dict[str, Any]:
    """P1: segflow from the store vs the classic recipe (on the first ``subset`` sequences)."""
    model = classic_model(engine.model.get_weights())
    few = arrays[:subset]
    # Warm-up doubles as the equivalence check: both ways must give the same predictions.
    classic = classic_stream(model, few, "predict")
    classic_stream(model, few[:1], "predict_on_batch")
    ours = segflow_outputs(engine, reader, subset)
    max_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(classic, ours, strict=True))
    seconds = alternate(
        rounds,
        {
            "segflow": lambda: stream_all(engine, reader, "predict"),
            "classic predict": lambda: classic_stream(model, few, "predict"),
            "classic predict_on_batch": lambda: classic_stream(model, few, "predict_on_batch"),
        },
        repeats={"segflow": 3, "classic predict_on_batch": 3},
    )
    frames = {"segflow": sum(reader.lengths), "classic": sum(len(a) for a in few)}
    fps = {
        name: (frames["segflow"] if name == "segflow" else frames["classic"]) / s
        for name, s in seconds.items()
    }
    return {
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": fps,
        "ratio_vs_predict": fps["segflow"] / fps["classic predict"],
        "ratio_vs_predict_on_batch": fps["segflow"] / fps["classic predict_on_batch"],
        "max_abs_diff_outputs": max_diff,
    }


# -- P2 / P6: disk vs memory ------------------------------------------------------------------


def disk_vs_memory(
    engine: Any, reader: Any, mode: str, consume: Callable[..., None], rounds: int
) -> dict[str, Any]:
    """Seconds and frames/s of ``mode`` fed from the store and from memory.

    "disk" is ``engine.stream(reader, mode)``, the production path (the ``tf.data`` dataset
    of the reader, consumed inside the step function); "own loop" is the path it replaced
    (``StepReader.iter_batches`` through ``pipelined``). "memory" is the best of a plain loop
    and the overlapped one (``consume``) over prebuilt tensors.
    """
    memory = preloaded(reader)
    consume(engine, lambda: memory[:1])  # trace the step function
    stream_all(engine, reader, mode)  # trace the dataset step, warm the page cache
    seconds = alternate(
        rounds,
        {
            "disk": lambda: stream_all(engine, reader, mode),
            "memory": lambda: consume(engine, lambda: memory, overlap=False),
            "memory, overlapped": lambda: consume(engine, lambda: memory),
            "own loop": lambda: consume(engine, reader.iter_batches),
        },
    )
    # The compute bound is the faster way of feeding memory: the plain loop, or the
    # overlapped one segflow uses (it costs a thread hand-off per step).
    seconds["memory"] = min(seconds["memory"], seconds.pop("memory, overlapped"))
    frames = sum(reader.lengths)
    return {
        "frames": frames,
        "steps": reader.num_steps,
        "megabytes": frames * _frame_bytes(reader) / 1e6,
        "reader_threads": 0 if reader.cheap_reads else "default",
        "seconds": seconds,
        "frames_per_s": {k: frames / s for k, s in seconds.items()},
        "ratio_disk_vs_memory": seconds["memory"] / seconds["disk"],
        "ratio_own_loop_vs_memory": seconds["memory"] / seconds["own loop"],
    }


def _frame_bytes(reader: Any) -> int:
    return int(np.prod(reader.frame_shape)) * reader.frame_dtype.itemsize


def stream_setup(repo: Any, ids: list[str], config: Any, with_labels: bool) -> tuple[Any, ...]:
    """An engine and a reader over ``ids`` (32 lanes, segments of 32)."""
    from segflow.engine.engine import StreamingEngine
    from segflow.engine.pipeline import StepReader

    engine = StreamingEngine(config, lanes=LANES, segment_length=SEGMENT)
    reader = StepReader(repo, ids, lanes=LANES, segment_length=SEGMENT, with_labels=with_labels)
    return engine, reader


# -- main -------------------------------------------------------------------------------------


def sizes(quick: bool) -> dict[str, Any]:
    """Data sizes and repeats: the default run, or a small smoke run."""
    if quick:
        return {
            "features": (48, 100, 200),
            "video": (32, 40, 60),
            "train": (32, 100, 200),
            "clips": (48, 80, 120),  # a ConvLSTM step is slow: still ~6 steps
            "classic_subset": 2,
            "rounds": 2,
        }
    return {
        "features": (128, 300, 500),
        "video": (64, 120, 200),
        "train": (64, 300, 500),
        "clips": (96, 150, 250),
        "classic_subset": 10,
        "rounds": 5,
    }


def lengths(count: int, low: int, high: int, *, seed: int) -> list[int]:
    """Mixed sequence lengths (more sequences than lanes: lanes switch mid-run)."""
    return [int(n) for n in np.random.default_rng(seed).integers(low, high + 1, size=count)]


def goals(results: dict[str, Any]) -> list[Goal]:
    """Every goal, checked against the figures measured."""
    return [
        P1_VS_CLASSIC.check(results["p1"]["ratio_vs_predict"]),
        *(
            target.check(results[key]["ratio_disk_vs_memory"])
            for key, target in DISK_VS_MEMORY.items()
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 2 rounds (smoke run)")
    args = parser.parse_args()
    size = sizes(args.quick)
    rounds = size["rounds"]
    import tensorflow  # noqa: F401 - imported before anything is timed

    from segflow.engine.model import ModelConfig

    features_config = ModelConfig(frame_shape=(FEATURES,), lstm_units=[UNITS])
    video_config = ModelConfig(
        frame_shape=VIDEO_SHAPE,
        input_dtype="uint8",
        encoder="conv",
        conv_filters=[16, 32],
        lstm_units=[UNITS],
    )
    gru_config = ModelConfig(frame_shape=(FEATURES,), cell="gru", lstm_units=[UNITS])
    conv_lstm_config = ModelConfig(
        frame_shape=CLIP_SHAPE,
        input_dtype="uint8",
        encoder="avgpool",
        pool_size=2,
        cell="conv_lstm",
        lstm_units=[CONV_FILTERS],
    )
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {
        "lanes": LANES,
        "segment_length": SEGMENT,
        "quick": args.quick,
        "load_average_before": os.getloadavg(),  # other processes on the machine skew ratios
    }
    with tempfile.TemporaryDirectory(prefix="segflow-bench-") as tmp:
        root = Path(tmp)
        arrays = [feature_frames(n, rng) for n in lengths(*size["features"], seed=1)]
        repo, ids = write_set(root, "features", arrays, chunk=128)
        features = repo, ids  # P7's data too
        engine, reader = stream_setup(repo, ids, features_config, with_labels=False)
        results["p2_features"] = disk_vs_memory(engine, reader, "predict", predict_all, rounds)
        results["p1"] = run_p1(engine, reader, arrays, size["classic_subset"], rounds)
        del arrays

        videos = [video_frames(n, rng) for n in lengths(*size["video"], seed=2)]
        repo, ids = write_set(root, "video", videos, chunk=64)
        del videos
        engine, reader = stream_setup(repo, ids, video_config, with_labels=False)
        results["p2_video"] = disk_vs_memory(engine, reader, "predict", predict_all, rounds)

        arrays = [feature_frames(n, rng) for n in lengths(*size["train"], seed=3)]
        labels = [np.tanh(a[:, :4].sum(axis=1)).astype(np.float32) for a in arrays]
        repo, ids = write_set(root, "train", arrays, labels, chunk=128)
        del arrays, labels
        engine, reader = stream_setup(repo, ids, features_config, with_labels=True)
        results["p6_train"] = disk_vs_memory(engine, reader, "train", train_all, rounds)

        engine, reader = stream_setup(*features, gru_config, with_labels=False)
        results["p7_gru"] = disk_vs_memory(engine, reader, "predict", predict_all, rounds)

        clips = [video_frames(n, rng, CLIP_SHAPE) for n in lengths(*size["clips"], seed=4)]
        repo, ids = write_set(root, "clips", clips, chunk=64)
        del clips
        engine, reader = stream_setup(repo, ids, conv_lstm_config, with_labels=False)
        results["p8_conv_lstm"] = disk_vs_memory(engine, reader, "predict", predict_all, rounds)
    results["load_average_after"] = os.getloadavg()
    load = (
        f"1-minute load average before/after: {results['load_average_before'][0]:.1f} / "
        f"{results['load_average_after'][0]:.1f} on {os.cpu_count()} CPUs"
    )
    return finish("streaming", results, goals(results), table(results), notes=[load])


def table(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Rows: measure, frames/s, baseline frames/s, ratio, goal."""
    p1 = results["p1"]
    fps = p1["frames_per_s"]
    rows: list[list[Any]] = [
        [
            "P1 segflow vs classic predict",
            fps["segflow"],
            fps["classic predict"],
            p1["ratio_vs_predict"],
            str(P1_VS_CLASSIC),
        ],
        [
            "P1 segflow vs predict_on_batch",
            fps["segflow"],
            fps["classic predict_on_batch"],
            p1["ratio_vs_predict_on_batch"],
            "-",
        ],
    ]
    for key, label in (
        ("p2_features", "P2a disk vs memory, 256-d"),
        ("p2_video", "P2b disk vs memory, 64x64x3 conv"),
        ("p6_train", "P6 TBPTT train disk vs memory"),
        ("p7_gru", "P7 GRU disk vs memory, 256-d"),
        ("p8_conv_lstm", "P8 ConvLSTM disk vs memory, 32x32x3"),
    ):
        r = results[key]
        fps = r["frames_per_s"]
        rows.append(
            [label, fps["disk"], fps["memory"], r["ratio_disk_vs_memory"], str(DISK_VS_MEMORY[key])]
        )
        rows.append(
            [
                "  own loop (before tf.data)",
                fps["own loop"],
                fps["memory"],
                r["ratio_own_loop_vs_memory"],
                "-",
            ]
        )
    return ["measure", "frames/s", "baseline frames/s", "ratio", "goal"], rows


if __name__ == "__main__":
    sys.exit(main())
