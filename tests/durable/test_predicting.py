"""Tests of prediction runs: results, resume after a crash, continuation and bad input.

A tiny model (3 features, LSTM 5+4, 2 outputs) with seeded random weights is exported into a
temporary checkpoint store; sequences of a few dozen frames go into a temporary data store.
The oracle is the stateless copy of the model over each whole sequence at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from segflow.checkpoint import CheckpointManager, Cursor
from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    SelectionConfig,
    StoreConfig,
    StreamConfig,
)
from segflow.engine.engine import StreamingEngine
from segflow.engine.model import activate
from segflow.errors import (
    CheckpointError,
    ConfigError,
    IncompleteSequenceError,
    InvalidIdError,
    LockedError,
)
from segflow.predicting import plan, predict
from segflow.progress import StepEvent
from segflow.registry import export_model, predict_run_key, train_run_key
from storage.local import LocalStore
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

FEATURES = 3
TAG = "tiny"
CONFIG = ModelConfig(frame_shape=(FEATURES,), lstm_units=[5, 4], outputs=2)
LENGTHS = {"seq-a": 23, "seq-b": 9, "seq-c": 16, "seq-d": 5}


# ------------------------------------------------------------------------------ fixtures


class World:
    """A data store with sequences, a checkpoint store with an exported model."""

    def __init__(self, root: Path, config: ModelConfig = CONFIG) -> None:
        self.data = LocalStore(root / "data")
        self.ckpt = LocalStore(root / "ckpt")
        self.repo = SequenceRepository(self.data)
        self.preds = PredictionRepository(self.data)
        self.frames: dict[str, np.ndarray] = {}
        self.config = config
        self.weights = export(self.ckpt, config, seed=0)

    def add(self, sequence_id: str, length: int, *, seed: int | None = None, **kw: Any) -> None:
        rng = np.random.default_rng(seed if seed is not None else len(self.frames))
        frames = rng.normal(size=(length, FEATURES)).astype(np.float32)
        write_sequence(self.repo, sequence_id, frames, chunk_length=4, **kw)
        meta = self.repo.meta(sequence_id)
        record = {
            "uri": f"{sequence_id}.npy",
            "fingerprint": f"fp-{sequence_id}-{seed}",
            "start": 0,
            "stop": length,
        }
        self.repo.write_meta(
            sequence_id, meta.replace(fingerprint=record["fingerprint"], sources=(record,))
        )
        self.frames[sequence_id] = frames

    def grow(self, sequence_id: str, extra: int) -> None:
        """Append ``extra`` frames the way an ingest ``--append`` does."""
        old = self.frames[sequence_id]
        new = np.random.default_rng(100 + extra).normal(size=(extra, FEATURES)).astype(np.float32)
        array = self.repo.frames(sequence_id)
        array.resize((len(old) + extra, FEATURES))
        array[len(old) :] = new
        meta = self.repo.meta(sequence_id)
        record = {
            "uri": "more.npy",
            "fingerprint": f"more-{extra}",
            "start": len(old),
            "stop": len(old) + extra,
        }
        self.repo.write_meta(
            sequence_id,
            meta.replace(
                length=meta.length + extra,
                frames_written=meta.length + extra,
                sources=(*meta.sources, record),
            ),
        )
        self.frames[sequence_id] = np.concatenate([old, new])

    def params(self, **changes: Any) -> PredictParams:
        stream = changes.pop("stream", StreamConfig(lanes=2, segment_length=4))
        every = changes.pop("every", 2)
        return PredictParams(
            store=StoreConfig(url=str(self.data.root)),
            checkpoints=CheckpointConfig(url=str(self.ckpt.root), every_steps=every),
            stream=stream,
            **{"model_tag": TAG, **changes},
        )

    def outputs(self) -> dict[str, np.ndarray]:
        return {sid: self.preds.read(TAG, sid) for sid in self.preds.ids(TAG)}

    def oracle(self, sequence_id: str) -> np.ndarray:
        """The model over the whole sequence in one stateless pass."""
        key = (self.config.config_hash(), id(self.weights))
        if key not in _STATELESS:
            engine = StreamingEngine(self.config, lanes=1, segment_length=1)
            engine.model.set_weights(self.weights)
            _STATELESS.clear()
            _STATELESS[key] = engine.stateless_copy()
        frames = self.frames[sequence_id][None]
        mask = np.ones(frames.shape[:2], bool)
        logits = _STATELESS[key]({"frames": frames, "mask": mask})
        return np.asarray(activate(self.config, logits))[0]


#: The last stateless oracle model built, keyed by config hash and weights list identity.
_STATELESS: dict[tuple[str, int], Any] = {}


def export(ckpt: LocalStore, config: ModelConfig, *, seed: int, tag: str = TAG) -> list[np.ndarray]:
    """Export a model with seeded random weights under ``tag``; return the weights."""
    engine = StreamingEngine(config, lanes=1, segment_length=1)
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.6, w.shape).astype(np.float32) for w in engine.model.get_weights()]
    engine.model.set_weights(weights)
    export_model(ckpt, tag, engine, config, meta={"checkpoint": f"ckpt-{seed}"})
    return weights


def world_of(root: Path, lengths: dict[str, int]) -> World:
    """A world under ``root`` holding a sequence of each length."""
    w = World(root)
    for sequence_id, length in lengths.items():
        w.add(sequence_id, length)
    return w


@pytest.fixture
def world(tmp_path: Path) -> World:
    return world_of(tmp_path, LENGTHS)


def assert_outputs_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for sid in want:
        assert got[sid].shape == want[sid].shape, sid
        np.testing.assert_allclose(got[sid], want[sid], atol=1e-5, err_msg=sid)


@pytest.fixture(params=["default chunks", "one-segment chunks"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Outputs in the default chunks (the test's sequences fit one) or a segment's each
    (every write spans chunk boundaries and merges into chunks holding durable rows)."""
    if request.param == "one-segment chunks":
        monkeypatch.setattr(plan, "OUTPUT_CHUNK_BYTES", 1)
    return str(request.param)


# ------------------------------------------------------------------------------ results


@pytest.mark.usefixtures("chunking")
def test_predictions_match_whole_sequence_oracle(world: World) -> None:
    report = predict(world.params(), run_id="run-1")
    assert (report.predicted, report.continued, report.skipped) == (4, 0, 0)
    assert report.frames == sum(LENGTHS.values())
    assert report.model_tag == TAG and report.config_hash == CONFIG.config_hash()
    assert_outputs_close(world.outputs(), {sid: world.oracle(sid) for sid in LENGTHS})
    meta = world.preds.meta(TAG, "seq-a")
    assert meta.complete and meta.length == 23 and meta.flow_run_id == "run-1"
    assert meta.checkpoint == report.checkpoint and meta.source_fingerprint == "fp-seq-a-None"
    chunk = plan.output_chunk(4, CONFIG.outputs)
    assert meta.segment_length == chunk == (4 if plan.OUTPUT_CHUNK_BYTES == 1 else 32768)
    chunks = world.data.list(f"predictions/{TAG}/seq-a/outputs/c")
    assert len(chunks) == -(-23 // chunk)  # a chunk file per chunk of rows, no more
    assert sorted(world.preds.read_state(TAG, "seq-a")) == [
        "lstm_0/c",
        "lstm_0/h",
        "lstm_1/c",
        "lstm_1/h",
    ]
    # Finished: the lock is gone and so are the run's checkpoints.
    assert world.preds.read_lock(TAG) is None
    assert world.ckpt.list("runs") == []
    # Nothing changed: a second run only checks.
    again = predict(world.params())
    assert (again.predicted, again.continued, again.skipped, again.frames) == (0, 0, 4, 0)
    assert again.steps == 0 and world.preds.meta(TAG, "seq-a").flow_run_id == "run-1"


@pytest.mark.parametrize(
    ("segment_length", "lanes"),
    [
        (7, 3),  # segments straddle the stored 4-frame chunks
        (32, 1),  # one lane, each sequence in a single segment
    ],
)
def test_results_do_not_depend_on_stream_shape(
    world: World, segment_length: int, lanes: int
) -> None:
    predict(world.params())
    reference = world.outputs()
    stream = StreamConfig(lanes=lanes, segment_length=segment_length)
    report = predict(world.params(stream=stream, recompute=True))
    assert report.predicted == 4
    assert_outputs_close(world.outputs(), reference)


def test_many_to_one_writes_the_last_frame_output(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"head": "many_to_one", "task": "binary"})
    world = World(tmp_path, config)
    for sequence_id, length in LENGTHS.items():
        world.add(sequence_id, length)
    predict(world.params())
    got = world.outputs()
    for sid in LENGTHS:
        assert got[sid].shape == (1, 2)
        np.testing.assert_allclose(got[sid][0], world.oracle(sid), atol=1e-5)
    world.grow("seq-b", 6)
    report = predict(world.params())
    assert report.continued == 1
    np.testing.assert_allclose(world.outputs()["seq-b"][0], world.oracle("seq-b"), atol=1e-5)


# ------------------------------------------------------------------------------ durability


class Crash(Exception):
    """Stands for the process being killed."""


def crash_at(step: int) -> Callable[[StepEvent], None]:
    """Crash once the step of index ``step`` is written (``step + 1`` steps done)."""

    def on_step(event: StepEvent) -> None:
        assert event.steps is not None and event.fraction == event.step / event.steps
        if event.step == step + 1:
            raise Crash(step)

    return on_step


@pytest.mark.usefixtures("chunking")
@pytest.mark.parametrize(
    ("every", "crash_step", "resumed_from"),
    [
        (2, 3, 4),  # killed right after a checkpoint
        (3, 4, 3),  # killed with two steps written past the last checkpoint
        (50, 5, None),  # killed before any checkpoint: starts again from the plan
    ],
)
def test_resume_after_crash_equals_uninterrupted_run(
    tmp_path: Path, every: int, crash_step: int, resumed_from: int | None
) -> None:
    reference_world = World(tmp_path / "ref")
    world = World(tmp_path / "crash")
    for w in (reference_world, world):
        for sequence_id, length in LENGTHS.items():
            w.add(sequence_id, length)
    predict(reference_world.params())
    reference = reference_world.outputs()

    with pytest.raises(Crash):
        predict(world.params(every=every), on_step=crash_at(crash_step))
    assert world.preds.read_lock(TAG) is None  # released on the way out
    run = CheckpointManager(world.ckpt, predict_run_key(TAG))
    assert bool(world.ckpt.list(run.prefix)) == (resumed_from is not None)
    # Whatever was recorded durable is already final.
    for sid in world.preds.ids(TAG):
        meta = world.preds.meta(TAG, sid)
        rows = world.preds.outputs(TAG, sid)[: meta.length]
        np.testing.assert_array_equal(rows, reference[sid][: meta.length])
    assert not all(world.preds.meta(TAG, s).complete for s in world.preds.ids(TAG))

    report = predict(world.params(every=every))
    assert report.resumed_from == resumed_from
    if resumed_from is not None:  # the plan made before the crash is carried on
        assert report.predicted == 4
    got = world.outputs()
    assert_outputs_close(got, reference)
    for sid in LENGTHS:
        assert world.preds.meta(TAG, sid).complete
        assert not np.isnan(world.preds.outputs(TAG, sid)[:]).any()  # no gap left unwritten
        if resumed_from is not None:  # the same schedule, carried on: bit for bit
            np.testing.assert_array_equal(got[sid], reference[sid])
    assert world.ckpt.list("runs") == []


def test_checkpoint_of_other_parameters_is_not_resumed(world: World) -> None:
    with pytest.raises(Crash):
        predict(world.params(), on_step=crash_at(4))
    report = predict(world.params(stream=StreamConfig(lanes=3, segment_length=5)))
    assert report.resumed_from is None
    # Sequences the crashed run finished are reused; the others are predicted from frame 0.
    assert report.skipped >= 1 and report.predicted + report.skipped == 4
    assert all(r.start == 0 for r in report.sequences if r.action == "predict")
    assert_outputs_close(world.outputs(), {sid: world.oracle(sid) for sid in LENGTHS})


@pytest.mark.usefixtures("chunking")
def test_crash_while_continuing_resumes_with_saved_state(world: World) -> None:
    predict(world.params())
    for sid in LENGTHS:
        world.grow(sid, 9)
    # Lanes 2, segments 4: seq-c and seq-d run steps 3-5. Killed after step 5, once they
    # have replaced their saved states; the checkpoint after step 2 predates their start.
    with pytest.raises(Crash):
        predict(world.params(every=3), on_step=crash_at(5))
    assert world.preds.meta(TAG, "seq-d").length == 14
    report = predict(world.params(every=3))
    assert report.resumed_from == 3 and report.continued == 4
    assert_outputs_close(world.outputs(), {sid: world.oracle(sid) for sid in LENGTHS})


# ------------------------------------------------------------------------------ continuation


@pytest.mark.usefixtures("chunking")
def test_continuation_equals_prediction_from_scratch(world: World) -> None:
    predict(world.params())
    world.grow("seq-a", 11)
    world.grow("seq-d", 3)
    report = predict(world.params(stream=StreamConfig(lanes=3, segment_length=5)))
    assert (report.predicted, report.continued, report.skipped) == (0, 2, 2)
    assert report.frames == 14  # only the new frames went through the model
    rows = {r.id: (r.action, r.start, r.stop) for r in report.sequences}
    assert rows["seq-a"] == ("continue", 23, 34)
    continued = world.outputs()
    assert world.preds.meta(TAG, "seq-a").length == 34
    assert len(world.preds.meta(TAG, "seq-a").sources) == 2

    again = predict(world.params(recompute=True))
    assert again.predicted == 4
    assert_outputs_close(continued, world.outputs())
    assert_outputs_close(continued, {sid: world.oracle(sid) for sid in LENGTHS})


def test_model_change_recomputes_from_the_start(world: World) -> None:
    predict(world.params())
    world.grow("seq-a", 5)
    world.weights = export(world.ckpt, CONFIG, seed=1)  # retrained: same config, new weights
    report = predict(world.params())
    assert (report.predicted, report.continued, report.skipped) == (4, 0, 0)
    assert_outputs_close(world.outputs(), {sid: world.oracle(sid) for sid in LENGTHS})


def test_config_change_recomputes_from_the_start(world: World) -> None:
    predict(world.params())
    world.grow("seq-b", 4)
    world.config = CONFIG.model_copy(update={"lstm_units": [6]})
    world.weights = export(world.ckpt, world.config, seed=2)
    report = predict(world.params())
    assert report.predicted == 4 and report.continued == 0
    assert world.preds.meta(TAG, "seq-b").config_hash == world.config.config_hash()
    assert_outputs_close(world.outputs(), {sid: world.oracle(sid) for sid in LENGTHS})


def test_replaced_source_recomputes(world: World) -> None:
    predict(world.params())
    world.add("seq-c", 20, seed=7)  # re-ingested from another source: new fingerprint
    report = predict(world.params())
    assert {r.id: r.action for r in report.sequences}["seq-c"] == "predict"
    np.testing.assert_allclose(world.outputs()["seq-c"], world.oracle("seq-c"), atol=1e-5)


def test_latest_training_checkpoint_is_used_without_export(world: World) -> None:
    predict(world.params())
    exported = world.outputs()
    world.ckpt.delete_prefix("models")
    engine = StreamingEngine(CONFIG, lanes=3, segment_length=6)
    engine.model.set_weights(world.weights)
    cursor = Cursor(kind="train", epoch=1, step=0, ids=("seq-a",), lanes=3, segment_length=6)
    CheckpointManager(world.ckpt, train_run_key(TAG)).save(engine, cursor, CONFIG)
    report = predict(world.params())
    assert report.checkpoint == f"runs/train-{TAG}/ckpt-1"
    assert report.predicted == 4  # another checkpoint: recomputed
    assert_outputs_close(world.outputs(), exported)


# ------------------------------------------------------------------------------ bad input


def _snapshot(store: LocalStore) -> dict[str, bytes]:
    return {k: store.read_bytes(k) for k in store.list("predictions")}


def test_frame_shape_mismatch_names_both_shapes(tmp_path: Path) -> None:
    world = World(tmp_path, CONFIG.model_copy(update={"frame_shape": (4,)}))
    world.add("seq-a", 10)
    with pytest.raises(ConfigError, match=r"\(4,\).*seq-a.*\(3,\)"):
        predict(world.params())
    assert world.data.list("predictions") == []


def test_bad_inputs_leave_predictions_untouched(world: World) -> None:
    predict(world.params())
    before = _snapshot(world.data)
    world.add("half", 8, complete=False)
    cases = [
        (ConfigError, world.params(selection=SelectionConfig(pattern="nothing-*"))),
        (IncompleteSequenceError, world.params(selection=SelectionConfig(ids=["half"]))),
    ]
    for error, params in cases:
        with pytest.raises(error):
            predict(params)
    # Default selection leaves the incomplete sequence out rather than failing.
    assert "half" not in {r.id for r in predict(world.params()).sequences}
    assert _snapshot(world.data) == before


def test_missing_or_corrupt_model(world: World) -> None:
    predict(world.params())
    before = _snapshot(world.data)
    model_key = f"models/{TAG}/model.keras"
    world.ckpt.write_bytes(model_key, world.ckpt.read_bytes(model_key)[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="corrupt"):
        predict(world.params())
    world.ckpt.delete_prefix("models")
    with pytest.raises(CheckpointError, match="Train"):
        predict(world.params())
    assert _snapshot(world.data) == before


def test_model_tag_with_path_characters(world: World) -> None:
    with pytest.raises(pydantic.ValidationError, match="model tag"):
        world.params(model_tag="../x")
    unchecked = world.params().model_copy(update={"model_tag": "a/b"})
    with pytest.raises(InvalidIdError, match="model tag"):
        predict(unchecked)
    assert world.data.list("predictions") == []


def test_concurrent_run_is_refused(world: World) -> None:
    with world.preds.lock(TAG, "other-run"):
        with pytest.raises(LockedError, match="other-run"):
            predict(world.params())
        assert world.preds.ids(TAG) == []
        holder = world.preds.read_lock(TAG)
        assert holder is not None and holder["owner"] == "other-run"  # the holder's, untouched
    assert world.preds.read_lock(TAG) is None


def test_break_lock_takes_a_dead_runs_lock(world: World) -> None:
    with world.preds.lock(TAG, "dead-run"):  # its process is gone; its lock is left behind
        with pytest.raises(LockedError, match=r"dead-run.*--break-lock"):
            predict(world.params())
        predict(world.params(break_lock=True))
        assert world.preds.ids(TAG)  # written under the lock it took
