"""Training: learning, resume equivalence (exception and SIGKILL), selection, inference."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.checkpoint import CheckpointManager
from segflow.config import ModelConfig, SelectionConfig
from segflow.engine.engine import StreamingEngine
from segflow.engine.lanes import read_lane_state
from segflow.errors import ConfigError, IncompleteSequenceError
from segflow.progress import StepEvent
from segflow.registry import load_exported, train_run_key
from segflow.training import TrainReport, infer_model_config, train
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tests.durable.conftest import TINY, tiny_sequences, train_params
from tests.engine.store_helpers import write_sequence

ROOT = Path(__file__).resolve().parents[2]


class Stop(Exception):
    """Raised from on_step to interrupt a run."""


@pytest.fixture(scope="module")
def data_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of tiny labelled sequences, shared by the module (training only reads it)."""
    path = tmp_path_factory.mktemp("data")
    tiny_sequences(SequenceRepository(LocalStore(path)))
    return str(path)


@pytest.fixture(scope="module")
def reference(data_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted two-epoch run: its report, exported weights and every on_step call."""
    ckpt = tmp_path_factory.mktemp("reference")
    calls: list[StepEvent] = []
    report = train(train_params(data_url, str(ckpt)), on_step=calls.append)
    weights = load_exported(LocalStore(ckpt), "tiny")[2]
    return {"report": report, "weights": weights, "calls": calls, "ckpt": ckpt}


def assert_same_weights(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    """Bit-for-bit equality (op determinism is on), not merely close."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ a full run


def test_reference_run_reports_checkpoints_and_exports(reference: dict[str, Any]) -> None:
    report: TrainReport = reference["report"]
    calls: list[StepEvent] = reference["calls"]
    # Each epoch takes the sequences in its own shuffled order, so their steps may differ.
    seen = np.cumsum([c.frames for c in calls])
    per_epoch = int(np.searchsorted(seen, 37 + 30 + 45 + 41)) + 1  # the first epoch's steps

    assert report.epochs == 2 and report.steps == len(calls)
    assert [c.step for c in calls] == list(range(1, len(calls) + 1))
    assert {c.steps for c in calls} == {len(calls)} and calls[-1].fraction == 1.0
    assert all(c.loss is not None and c.loss >= 0 for c in calls)
    assert report.steps_run == report.steps and report.resumed_from is None
    assert report.frames == 2 * (37 + 30 + 45 + 41)
    assert report.ids == ("seq-0", "seq-1", "seq-2", "seq-3")
    assert report.config_hash == TINY.config_hash()
    assert [set(h) for h in report.history] == [{"loss", "accuracy", "learning_rate"}] * 2
    assert 0 < calls[per_epoch - 1].fraction < 1  # the end of the first epoch
    assert all(a.fraction < b.fraction for a, b in itertools.pairwise(calls))
    assert sum(c.frames for c in calls) == report.frames
    manager = CheckpointManager(LocalStore(reference["ckpt"]), train_run_key("tiny"))
    assert manager.latest() == report.checkpoint and len(manager.names()) == 2  # keep=2
    assert manager.read_cursor().epoch == 2
    _, manifest, _ = load_exported(LocalStore(reference["ckpt"]), "tiny")
    assert manifest["checkpoint"] == report.checkpoint
    assert manifest["history"] == report.history


def test_loss_decreases_on_a_tiny_task(data_url: str, tmp_path: Path) -> None:
    report = train(train_params(data_url, str(tmp_path), epochs=5, learning_rate=3e-2))

    losses = [h["loss"] for h in report.history]
    assert losses[-1] < 0.8 * losses[0]
    assert report.history[-1]["accuracy"] > 0.8


def test_finished_run_only_reports(reference: dict[str, Any], data_url: str) -> None:
    ckpt = reference["ckpt"]
    before = sorted(p.relative_to(ckpt) for p in Path(ckpt).rglob("*"))

    again = train(train_params(data_url, str(ckpt)), on_step=lambda info: pytest.fail("trained"))

    assert again.steps_run == 0
    assert again.history == reference["report"].history
    assert again.checkpoint == reference["report"].checkpoint
    assert sorted(p.relative_to(ckpt) for p in Path(ckpt).rglob("*")) == before


# ------------------------------------------------------------------------------ resuming


@pytest.mark.parametrize(
    "stop_at",
    [
        5,  # mid-epoch, one step after a checkpoint (every 4 steps): step 5 is recomputed
        8,  # right after a mid-epoch checkpoint
        13,  # in the second epoch, after the end-of-epoch checkpoint
    ],
)
def test_resumed_run_matches_uninterrupted_bitwise(
    reference: dict[str, Any], data_url: str, tmp_path: Path, stop_at: int
) -> None:
    params = train_params(data_url, str(tmp_path))

    def stop(event: StepEvent) -> None:
        if event.step == stop_at:
            raise Stop

    with pytest.raises(Stop):
        train(params, on_step=stop)
    resumed = train(params)

    assert resumed.resumed_from is not None
    assert resumed.steps_run < reference["report"].steps
    assert resumed.history == reference["report"].history
    assert resumed.frames == reference["report"].frames
    assert_same_weights(load_exported(LocalStore(tmp_path), "tiny")[2], reference["weights"])


_CHILD = """
import sys, time
from segflow.config import TrainParams
from segflow.training import train

def slow(event):
    time.sleep(0.05)  # leave the parent time to kill us between checkpoints
    if event.step >= 15:
        time.sleep(600)  # never finish: the parent kills us first

train(TrainParams.model_validate_json(sys.argv[1]), on_step=slow)
"""


def test_sigkill_mid_run_then_rerun_matches_uninterrupted(
    reference: dict[str, Any], data_url: str, tmp_path: Path
) -> None:
    params = train_params(data_url, str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, params.model_dump_json()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    manager = CheckpointManager(LocalStore(tmp_path), train_run_key("tiny"))
    try:
        deadline = time.monotonic() + 120
        while manager.latest() is None and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert manager.latest() is not None, "no checkpoint appeared within 120 s"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert manager.read_cursor().epoch < 2  # killed mid-run

    resumed = train(params)

    assert resumed.resumed_from is not None
    assert resumed.history == reference["report"].history
    assert_same_weights(load_exported(LocalStore(tmp_path), "tiny")[2], reference["weights"])


# ------------------------------------------------------------------------------ validation etc.


def test_validation_leaves_training_untouched(reference: dict[str, Any], tmp_path: Path) -> None:
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    tiny_sequences(repo)
    tiny_sequences(repo, (20, 25, 33), prefix="val")
    params = train_params(
        str(tmp_path / "data"),
        str(tmp_path / "ckpt"),
        validation_ids=["val-0", "val-1", "val-2"],
        selection=SelectionConfig(pattern="seq-*"),
        tensorboard_dir=str(tmp_path / "tb"),
    )

    report = train(params)

    assert [set(h) for h in report.history] == [
        {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    ] * 2
    trained = [{k: h[k] for k in ("loss", "accuracy")} for h in report.history]
    assert trained == [{k: h[k] for k in ("loss", "accuracy")} for h in reference["report"].history]
    exported = load_exported(LocalStore(tmp_path / "ckpt"), "tiny")[2]
    assert_same_weights(exported, reference["weights"])
    # The lane state checkpointed at the end of the run is training's, not validation's.
    assert _final_lane_state(tmp_path / "ckpt") == _final_lane_state(reference["ckpt"])
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def _final_lane_state(ckpt: Path) -> dict[str, list[float]]:
    engine = StreamingEngine(TINY, lanes=2, segment_length=8)
    CheckpointManager(LocalStore(ckpt), train_run_key("tiny")).restore(engine)
    return {k: v.tolist() for k, v in read_lane_state(engine.model).items()}


def test_other_model_under_the_same_tag_is_refused(
    reference: dict[str, Any], data_url: str
) -> None:
    other = TINY.model_copy(update={"lstm_units": [4]})
    params = train_params(data_url, str(reference["ckpt"]), model=other)

    with pytest.raises(ConfigError) as caught:
        train(params)

    assert TINY.config_hash() in str(caught.value) and other.config_hash() in str(caught.value)


# ------------------------------------------------------------------------------ selection


@pytest.fixture
def mixed_repo(tmp_path: Path) -> SequenceRepository:
    """Complete sequences seq-0..3 and an incomplete 'broken' one."""
    repo = SequenceRepository(LocalStore(tmp_path / "mixed"))
    tiny_sequences(repo)
    frames = np.zeros((10, 3), np.float32)
    write_sequence(
        repo, "broken", frames, chunk_length=8, labels=np.zeros(10, np.int8), complete=False
    )
    return repo


def test_train_on_an_incomplete_sequence_fails_clearly(
    mixed_repo: SequenceRepository, tmp_path: Path
) -> None:
    params = train_params(
        mixed_repo.store.url, str(tmp_path / "ckpt"), selection=SelectionConfig(ids=["broken"])
    )
    with pytest.raises(IncompleteSequenceError, match="'broken'"):
        train(params)
    params = train_params(
        mixed_repo.store.url, str(tmp_path / "ckpt"), selection=SelectionConfig(pattern="x*")
    )
    with pytest.raises(ConfigError, match="No complete sequence"):
        train(params)


# ------------------------------------------------------------------------------ inference


def _write(
    repo: SequenceRepository, frames: np.ndarray, labels: np.ndarray | None, kind: str | None = None
) -> list[str]:
    write_sequence(repo, "s", frames, chunk_length=4, labels=labels, label_kind=kind)
    return ["s"]


rng = np.random.default_rng(0)

INFERENCE = [
    # feature vectors, 0/1 int labels: binary, no encoder
    (
        "binary features",
        rng.normal(size=(9, 3)).astype(np.float32),
        np.array([0, 1] * 4 + [1], np.int8),
        None,
        {"encoder": "none", "task": "binary", "outputs": 1, "input_dtype": "float32"},
    ),
    # CSV label columns are stored as float32: whole numbers still count as classes
    (
        "float 0/1 labels",
        rng.normal(size=(9, 3)),
        np.array([0.0, 1.0] * 4 + [0.0], np.float32),
        None,
        {"task": "binary", "input_dtype": "float32"},
    ),
    # small ints above 1: multiclass with max + 1 classes
    (
        "multiclass",
        rng.normal(size=(9, 4)).astype(np.float32),
        np.array([0, 3, 1] * 3, np.int64),
        None,
        {"task": "multiclass", "outputs": 4, "head": "many_to_many"},
    ),
    # real-valued targets, two columns: regression with two outputs
    (
        "regression",
        rng.normal(size=(9, 2)).astype(np.float32),
        rng.normal(size=(9, 2)).astype(np.float32),
        None,
        {"task": "regression", "outputs": 2},
    ),
    # uint8 64x64x3 video: avgpool pooled to at most 256 features, frames stay uint8
    (
        "video",
        np.zeros((5, 64, 64, 3), np.uint8),
        np.zeros(5, np.int8),
        None,
        {"encoder": "avgpool", "pool_size": 8, "input_dtype": "uint8"},
    ),
    # one label for the whole sequence: many_to_one
    (
        "per sequence",
        rng.normal(size=(9, 3)).astype(np.float32),
        np.array([2], np.int64),
        "per_sequence",
        {"head": "many_to_one", "task": "multiclass", "outputs": 3},
    ),
]


@pytest.mark.parametrize(
    ("frames", "labels", "kind", "expected"),
    [row[1:] for row in INFERENCE],
    ids=[row[0] for row in INFERENCE],
)
def test_infer_model_config(
    tmp_path: Path,
    frames: np.ndarray,
    labels: np.ndarray,
    kind: str | None,
    expected: dict[str, Any],
) -> None:
    repo = SequenceRepository(LocalStore(tmp_path))
    config = infer_model_config(repo, _write(repo, frames, labels, kind))

    assert isinstance(config, ModelConfig)
    assert config.frame_shape == frames.shape[1:]
    assert {k: getattr(config, k) for k in expected} == expected


def test_infer_model_config_needs_labels(tmp_path: Path) -> None:
    repo = SequenceRepository(LocalStore(tmp_path))
    with pytest.raises(ConfigError, match=r"'s' .* has no labels"):
        infer_model_config(repo, _write(repo, np.zeros((4, 3), np.float32), None))


def test_train_infers_the_model_when_none_is_given(data_url: str, tmp_path: Path) -> None:
    report = train(train_params(data_url, str(tmp_path), model=None, epochs=1))

    config = CheckpointManager(LocalStore(tmp_path), train_run_key("tiny")).read_config()
    assert (config.task, config.encoder, config.outputs) == ("binary", "none", 1)
    assert report.config_hash == config.config_hash()
