"""Training practitioners can trust: held-out sequences are never trained on, and float
features are standardized inside the model from the training sequences' statistics.

One training run with a held-out sequence (``trained``) serves the tests that only read its
export or predict on a copy of its stores.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    SelectionConfig,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.engine.engine import StreamingEngine
from segflow.engine.model import activate
from segflow.engine.standardize import Standardize
from segflow.errors import ConfigError
from segflow.predicting import predict
from segflow.registry import load_exported_model, load_model
from segflow.selection import split_validation
from segflow.training import TrainReport, train
from storage.local import LocalStore
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

SCALES = np.array([0.001, 1.0, 1000.0], np.float32)  # metres of rain, a ratio, pascals


def _world(root: Path, count: int = 8) -> tuple[SequenceRepository, dict[str, np.ndarray]]:
    repo = SequenceRepository(LocalStore(root / "data"))
    frames = {}
    for i in range(count):
        rng = np.random.default_rng(i)
        x = (rng.normal(size=(9 + 2 * i, 3)) * SCALES + SCALES * 5).astype(np.float32)
        x[1, 2] = np.nan  # a sensor dropout
        labels = (np.nan_to_num(x[:, 1]) > 5).astype(np.int8)
        write_sequence(repo, f"r{i}", x, chunk_length=4, labels=labels)
        frames[f"r{i}"] = x
    return repo, frames


def _params(root: Path, **changes: Any) -> TrainParams:
    base: dict[str, Any] = {
        "store": StoreConfig(url=str(root / "data")),
        "checkpoints": CheckpointConfig(url=str(root / "ckpt"), every_steps=3),
        "stream": StreamConfig(lanes=2, segment_length=4),
        "epochs": 1,
        "model_tag": "t",
    }
    return TrainParams(**{**base, **changes})


def test_validation_sequences_are_never_trained_on(tmp_path: Path) -> None:
    _world(tmp_path)
    report = train(_params(tmp_path, validation_fraction=0.25, validation_pattern="r7"))
    held = {"r7"} | {i for i in (f"r{n}" for n in range(8)) if i not in report.ids}
    assert "r7" not in report.ids and len(held) == 3  # the pattern, then 2 of 8 at random
    assert "val_loss" in report.history[-1]
    again = split_validation(None, [f"r{n}" for n in range(8)], fraction=0.25, seed=0)
    assert again == split_validation(None, [f"r{n}" for n in range(8)], fraction=0.25, seed=0)


def test_explicit_overlap_between_training_and_validation_is_refused(tmp_path: Path) -> None:
    _world(tmp_path)
    selection = SelectionConfig(ids=["r0", "r1", "r2"])
    with pytest.raises(ConfigError, match=r"\['r1'\] both in the training ids"):
        train(_params(tmp_path, selection=selection, validation_ids=["r1"]))


def test_validation_ids_outside_the_selection_are_removed_from_training(tmp_path: Path) -> None:
    _world(tmp_path)
    report = train(_params(tmp_path, validation_ids=["r3", "r5"]))
    assert "r3" not in report.ids and "r5" not in report.ids and len(report.ids) == 6


def test_holding_out_everything_is_refused(tmp_path: Path) -> None:
    _world(tmp_path, count=2)
    with pytest.raises(ConfigError, match="holds out every selected sequence"):
        train(_params(tmp_path, validation_pattern="r*"))


@dataclass(frozen=True)
class Trained:
    """Stores after a 2-epoch run holding out ``r7`` (``root``), its report and the frames."""

    root: Path
    report: TrainReport
    frames: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One training run for the module's read-only tests."""
    root = tmp_path_factory.mktemp("trained")
    _, frames = _world(root)
    return Trained(root, train(_params(root, epochs=2, validation_ids=["r7"])), frames)


def test_inferred_model_standardizes_with_the_training_statistics(trained: Trained) -> None:
    report, frames = trained.report, trained.frames
    assert "r7" not in report.ids
    config, _, model = load_exported_model(LocalStore(trained.root / "ckpt"), "t")
    assert config.normalize
    layer = next(layer for layer in model.layers if isinstance(layer, Standardize))
    rows = np.concatenate([frames[i] for i in report.ids]).astype(np.float64)
    np.testing.assert_allclose(layer.mean.numpy(), np.nanmean(rows, axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.variance.numpy(), np.nanvar(rows, axis=0), rtol=1e-4)


def test_prediction_applies_the_stored_statistics(tmp_path: Path, trained: Trained) -> None:
    shutil.copytree(trained.root, tmp_path, dirs_exist_ok=True)
    repo, frames = SequenceRepository(LocalStore(tmp_path / "data")), trained.frames
    predict(
        PredictParams(
            store=StoreConfig(url=str(tmp_path / "data")),
            checkpoints=CheckpointConfig(url=str(tmp_path / "ckpt")),
            model_tag="t",
        )
    )
    model = load_model(LocalStore(tmp_path / "ckpt"), "t")
    engine = StreamingEngine(model.config, lanes=1, segment_length=1)
    engine.model.set_weights(model.weights)
    whole = engine.stateless_copy()
    x = frames["r2"]
    logits = whole({"frames": x[None], "mask": np.ones((1, len(x)), bool)})
    want = np.asarray(activate(model.config, logits))[0]
    got = PredictionRepository(repo.store).read("t", "r2")
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.isfinite(got).all()  # the dropout is fed as the feature's mean


def test_normalization_can_be_turned_off_and_uint8_frames_are_not_standardized() -> None:
    with pytest.raises(ValueError, match=r"normalize.*uint8"):
        ModelConfig(frame_shape=(4, 4), input_dtype="uint8", encoder="avgpool", normalize=True)
    assert not ModelConfig(frame_shape=(3,)).normalize  # explicit configs get what they say


def test_early_stopping_exports_the_best_epoch_and_says_why(tmp_path: Path) -> None:
    from segflow.config import EarlyStopping
    from segflow.registry import load_exported

    _world(tmp_path)
    # A learning rate this high makes the validation loss wander: it will stop improving.
    stop = EarlyStopping(monitor="val_loss", patience=2)
    params = _params(
        tmp_path, epochs=12, learning_rate=0.5, validation_ids=["r7"], early_stopping=stop
    )
    report = train(params)
    losses = [h["val_loss"] for h in report.history]
    assert report.best_epoch == 1 + int(np.argmin(losses))
    if report.stopped is not None:  # stopped early: patience epochs after the best one
        assert report.epochs == report.best_epoch + 2 < 12
        assert "val_loss did not improve" in report.stopped
    exported = load_exported(LocalStore(tmp_path / "ckpt"), "t")
    assert exported[1]["checkpoint"].startswith("best-t/")
    again = train(params)  # finished: only reports, same best epoch
    assert again.steps_run == 0 and again.best_epoch == report.best_epoch


def test_early_stopping_on_validation_needs_validation_sequences(tmp_path: Path) -> None:
    from segflow.config import EarlyStopping

    _world(tmp_path)
    with pytest.raises(ConfigError, match=r"early_stopping.monitor='val_loss'"):
        train(_params(tmp_path, epochs=2, early_stopping=EarlyStopping()))


def test_cosine_schedule_with_warmup_and_clipping_resumes_exactly(tmp_path: Path) -> None:
    from segflow.config import OptimizerConfig
    from segflow.progress import StepEvent
    from segflow.registry import load_exported

    optimizer = OptimizerConfig(name="adamw", clipnorm=1.0, schedule="cosine", warmup_steps=3)
    _world(tmp_path / "a")
    _world(tmp_path / "b")
    reference = train(_params(tmp_path / "a", epochs=3, optimizer=optimizer))
    rates = [h["learning_rate"] for h in reference.history]
    assert rates[0] > rates[1] > rates[2] >= 0.0  # decaying after the warm-up

    class Stop(Exception):
        pass

    def stop(event: StepEvent) -> None:
        if event.step == 7:
            raise Stop

    with pytest.raises(Stop):
        train(_params(tmp_path / "b", epochs=3, optimizer=optimizer), on_step=stop)
    resumed = train(_params(tmp_path / "b", epochs=3, optimizer=optimizer))
    assert resumed.history == reference.history
    for a, b in zip(
        load_exported(LocalStore(tmp_path / "a" / "ckpt"), "t")[2],
        load_exported(LocalStore(tmp_path / "b" / "ckpt"), "t")[2],
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_plateau_schedule_lowers_the_rate_when_the_loss_stalls(tmp_path: Path) -> None:
    from segflow.config import OptimizerConfig

    _world(tmp_path)
    optimizer = OptimizerConfig(
        schedule="plateau", plateau_monitor="loss", plateau_patience=1, plateau_factor=0.5
    )
    report = train(_params(tmp_path, epochs=6, learning_rate=0.5, optimizer=optimizer))
    rates = [h["learning_rate"] for h in report.history]
    losses = [h["loss"] for h in report.history]
    assert rates[0] == pytest.approx(0.5)
    # rates[i] is recorded before epoch i's plateau check, which can lower rates[i + 1].
    stalled = any(b >= a for a, b in itertools.pairwise(losses[:-1]))
    assert (min(rates) < 0.5) == stalled  # lowered exactly when the loss stopped falling


def test_lanes_take_the_sequences_in_a_new_order_every_epoch() -> None:
    from segflow.feeds import epoch_order

    ids = [f"r{i}" for i in range(8)]
    orders = [epoch_order(ids, 0, epoch) for epoch in range(4)]
    assert all(sorted(order) == ids for order in orders)
    assert len({tuple(order) for order in orders}) == 4  # shuffled each epoch
    assert epoch_order(ids, 0, 2) == orders[2]  # pure: a resume finds the same order


def test_resume_over_a_grown_training_sequence_is_refused_or_restarts_its_epoch(
    tmp_path: Path,
) -> None:
    from segflow.progress import StepEvent

    repo, _ = _world(tmp_path)

    class Stop(Exception):
        pass

    def stop(event: StepEvent) -> None:
        if event.step == 4:
            raise Stop

    with pytest.raises(Stop):
        train(_params(tmp_path, epochs=2), on_step=stop)
    meta = repo.meta("r2")
    array = repo.frames("r2")
    array.resize((meta.length + 3, 3))
    array[meta.length :] = 1.0
    labels = repo.labels("r2")
    assert labels is not None
    labels.resize((meta.length + 3,))
    repo.write_meta("r2", meta.replace(length=meta.length + 3, frames_written=meta.length + 3))
    with pytest.raises(ConfigError, match=r"'r2' has 16 frames, 13 before since checkpoint"):
        train(_params(tmp_path, epochs=2))
    # By choice: the weights and finished epochs stay; the interrupted epoch runs again over
    # the sequences as they are now, and the report says so.
    report = train(_params(tmp_path, epochs=2, on_changed_data="restart_epoch"))
    assert report.epochs == 2 and len(report.history) == 2
    (restart,) = report.restarts
    assert "'r2' has 16 frames, 13 before" in restart and restart.startswith("epoch ")
    assert report.frames > 0


def test_warm_start_continues_the_given_model(tmp_path: Path) -> None:
    from segflow.registry import load_exported

    _world(tmp_path)
    train(_params(tmp_path, model_tag="base", selection=SelectionConfig(pattern="r[0-3]")))
    # Fine-tune on other sequences with a vanishing rate: the weights barely move, and the
    # standardization statistics stay the base model's (they are weights, not recomputed).
    tuned = train(
        _params(
            tmp_path,
            model_tag="tuned",
            init_from="base",
            learning_rate=1e-12,
            selection=SelectionConfig(pattern="r[4-7]"),
        )
    )
    assert tuned.ids == ("r4", "r5", "r6", "r7") or set(tuned.ids) == {"r4", "r5", "r6", "r7"}
    base = load_exported(LocalStore(tmp_path / "ckpt"), "base")
    after = load_exported(LocalStore(tmp_path / "ckpt"), "tuned")
    assert after[0] == base[0] and after[1]["init_from"] == "base"
    for a, b in zip(base[2], after[2], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_training_curves_are_written_beside_the_model(trained: Trained) -> None:
    png = LocalStore(trained.root / "ckpt").read_bytes("models/t/curves.png")
    assert png.startswith(b"\x89PNG")
