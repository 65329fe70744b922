"""The recipe on the streaming (stateful) path: shifted inputs and forecast horizons.

Every mode is checked against a brute-force oracle written with plain NumPy indexing:

- inputs at row t: frame t, label t, or frame t ‖ label t;
- target of row t: label t + H, or none (NaN, no loss) when t + H is past the labels' end;
- predictions: segmented streaming equals the stateless model over the whole input rows.

Data is realistic rather than clean: features on different scales with noise, lengths that
are not multiples of the chunk or segment, more sequences than lanes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    Recipe,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.engine.chunks import ArrayChunks, SequenceChunks
from segflow.engine.engine import StreamingEngine
from segflow.engine.model import activate
from segflow.engine.pipeline import StepReader
from segflow.engine.shaping import shape_sequence
from segflow.errors import ConfigError
from segflow.predicting import predict
from segflow.registry import load_model
from segflow.training import train
from storage.local import LocalStore
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence
from tests.windowed.data_helpers import RECIPE_MODES

LENGTHS = (13, 7, 10, 4, 16)
FEATURES = 3
MODES = RECIPE_MODES


def realistic(length: int, seed: int, label_dims: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features on very different scales with noise; a label that depends on the past."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    scales = np.array([0.01, 1.0, 300.0], np.float32)  # rain in m, a ratio, pressure in hPa
    base = np.sin(t[:, None] / 3.0 + np.arange(FEATURES)) + rng.normal(0, 0.3, (length, 3))
    frames = (base * scales).astype(np.float32)
    value = np.cumsum(rng.normal(size=length)).astype(np.float32)
    labels = value if not label_dims else np.stack([value, -value], axis=1)
    return frames, labels


def oracle_rows(
    frames: np.ndarray, labels: np.ndarray, inputs: str, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Input rows and targets (NaN where none) by plain indexing."""
    lab = labels.reshape(len(labels), -1).astype(np.float32)
    x = {
        "features": frames,
        "labels": lab,
        "features_and_labels": np.concatenate([frames, lab], axis=1),
    }[inputs]
    y = np.full_like(lab, np.nan)
    if horizon < len(lab):
        y[: len(lab) - horizon] = lab[horizon:]
    return x, y.reshape(labels.shape[:1] + labels.shape[1:]) if labels.ndim > 1 else y[:, 0]


def shaped(
    label_dims: int, inputs: str, horizon: int
) -> tuple[list[SequenceChunks], list[tuple[np.ndarray, np.ndarray]]]:
    sequences, oracles = [], []
    for i, length in enumerate(LENGTHS):
        frames, labels = realistic(length, i, label_dims)
        seq = SequenceChunks(str(i), ArrayChunks(frames, 5), ArrayChunks(labels, 5))
        sequences.append(shape_sequence(seq, Recipe(inputs=inputs, horizon=horizon)))
        oracles.append(oracle_rows(frames, labels, inputs, horizon))
    return sequences, oracles


@pytest.mark.parametrize(("inputs", "horizon"), MODES)
@pytest.mark.parametrize("label_dims", [0, 2])
def test_batches_hold_the_oracle_inputs_and_targets(
    inputs: str, horizon: int, label_dims: int
) -> None:
    sequences, oracles = shaped(label_dims, inputs, horizon)
    reader = StepReader.from_sources(sequences, lanes=2, segment_length=4, with_labels=True)
    got_x: dict[int, list[np.ndarray]] = {}
    got_y: dict[int, list[np.ndarray]] = {}
    for step, batch in zip(reader.steps(), reader.iter_batches(), strict=True):
        for lane, slot in enumerate(step.slots):
            if slot.sequence is not None:
                got_x.setdefault(slot.sequence, []).append(batch["frames"][lane, : slot.valid])
                got_y.setdefault(slot.sequence, []).append(batch["labels"][lane, : slot.valid])
    for i, (x, y) in enumerate(oracles):
        np.testing.assert_array_equal(np.concatenate(got_x[i]), x)
        np.testing.assert_array_equal(np.concatenate(got_y[i]), y)  # NaN where no target


def _engine(width: int, outputs: int, lanes: int, segment: int) -> StreamingEngine:
    config = ModelConfig(frame_shape=(width,), lstm_units=[6, 5], outputs=outputs)
    return StreamingEngine(config, lanes=lanes, segment_length=segment, seed=3)


@pytest.mark.parametrize(("inputs", "horizon"), MODES)
def test_segmented_streaming_equals_a_whole_sequence_pass(inputs: str, horizon: int) -> None:
    sequences, oracles = shaped(0, inputs, horizon)
    reader = StepReader.from_sources(sequences, lanes=2, segment_length=3)
    engine = _engine(reader.frame_shape[0], 1, lanes=2, segment=3)
    whole = engine.stateless_copy()
    got = dict(engine.predict(reader.iter_batches(), reader.steps(), reader.lengths))
    for i, (x, _) in enumerate(oracles):
        logits = whole({"frames": x[None], "mask": np.ones((1, len(x)), bool)})
        want = np.asarray(activate(engine.config, logits))[0]
        # Every row has a prediction, the last `horizon` ones being forecasts past the end.
        assert got[i].shape == (len(x), 1)
        np.testing.assert_allclose(got[i], want, atol=1e-5)


@pytest.mark.parametrize(("inputs", "horizon"), MODES)
def test_loss_counts_only_rows_with_a_target(inputs: str, horizon: int) -> None:
    sequences, oracles = shaped(0, inputs, horizon)
    reader = StepReader.from_sources(sequences, lanes=2, segment_length=4, with_labels=True)
    engine = _engine(reader.frame_shape[0], 1, lanes=2, segment=4)
    totals = {"loss_sum": 0.0, "count": 0.0}
    for _, sums in engine.stream(reader, "evaluate"):
        totals["loss_sum"] += sums["loss_sum"]
        totals["count"] += sums["count"]
    whole = engine.stateless_copy()
    loss, count = 0.0, 0
    for x, y in oracles:
        pred = np.asarray(whole({"frames": x[None], "mask": np.ones((1, len(x)), bool)}))[0, :, 0]
        known = np.isfinite(y)
        loss += float(np.sum((pred[known] - y[known]) ** 2))
        count += int(known.sum())
    assert totals["count"] == count == sum(max(n - horizon, 0) for n in LENGTHS)
    assert totals["loss_sum"] == pytest.approx(loss, rel=1e-4)


def test_nan_labels_take_no_loss_and_do_not_poison_training() -> None:
    frames, labels = realistic(20, 0)
    labels = labels.copy()
    labels[[2, 9, 10]] = np.nan  # gaps in the record
    reader = StepReader.from_arrays([frames], [labels], lanes=1, segment_length=5)
    engine = _engine(FEATURES, 1, lanes=1, segment=5)
    sums = [s for _, s in engine.stream(reader, "train")]
    assert sum(s["count"] for s in sums) == 17
    assert all(np.isfinite(w).all() for w in engine.model.get_weights())


# ---------------------------------------------------------------- stores: train, predict


def _world(tmp_path: Path, *, label_dims: int = 0) -> tuple[SequenceRepository, dict[str, Any]]:
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    data = {}
    for i, length in enumerate(LENGTHS):
        frames, labels = realistic(length + 20, i, label_dims)
        write_sequence(repo, f"s{i}", frames, chunk_length=5, labels=labels)
        data[f"s{i}"] = (frames, labels)
    return repo, data


def _train(tmp_path: Path, recipe: Recipe, **changes: Any) -> TrainParams:
    base: dict[str, Any] = {
        "store": StoreConfig(url=str(tmp_path / "data")),
        "checkpoints": CheckpointConfig(url=str(tmp_path / "ckpt"), every_steps=3),
        "stream": StreamConfig(lanes=2, segment_length=4),
        "epochs": 1,
        "model_tag": "fc",
        "recipe": recipe,
    }
    params = TrainParams(**{**base, **changes})
    train(params)
    return params


def _predict_params(tmp_path: Path, **changes: Any) -> PredictParams:
    return PredictParams(
        store=StoreConfig(url=str(tmp_path / "data")),
        checkpoints=CheckpointConfig(url=str(tmp_path / "ckpt")),
        stream=StreamConfig(lanes=3, segment_length=5),
        model_tag="fc",
        **changes,
    )


def test_train_then_predict_uses_the_saved_recipe(tmp_path: Path) -> None:
    repo, data = _world(tmp_path)
    recipe = Recipe(inputs="features_and_labels", horizon=2)
    _train(tmp_path, recipe)
    model = load_model(LocalStore(tmp_path / "ckpt"), "fc")
    assert model.recipe == recipe
    assert model.config.frame_shape == (FEATURES + 1,)
    predict(_predict_params(tmp_path))  # not told the recipe again
    preds = PredictionRepository(repo.store)
    engine = StreamingEngine(model.config, lanes=1, segment_length=1)
    engine.model.set_weights(model.weights)
    whole = engine.stateless_copy()
    for sid, (frames, labels) in data.items():
        meta = preds.meta("fc", sid)
        assert (meta.inputs, meta.horizon, meta.time_steps) == ("features_and_labels", 2, None)
        np.testing.assert_array_equal(meta.target_frames(), np.arange(len(frames)) + 2)
        x, _ = oracle_rows(frames, labels, "features_and_labels", 2)
        logits = whole({"frames": x[None], "mask": np.ones((1, len(x)), bool)})
        want = np.asarray(activate(model.config, logits))[0]
        np.testing.assert_allclose(preds.read("fc", sid), want, atol=1e-5)


@pytest.fixture(scope="module")
def labels_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stores after training on ``Recipe(inputs="labels", horizon=1)``; tests use copies."""
    root = tmp_path_factory.mktemp("labels-model")
    _world(root)
    _train(root, Recipe(inputs="labels", horizon=1))
    return root


def test_label_inputs_need_labels_when_predicting(tmp_path: Path, labels_model: Path) -> None:
    shutil.copytree(labels_model, tmp_path, dirs_exist_ok=True)
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    frames, _ = realistic(12, 9)
    write_sequence(repo, "unlabelled", frames, chunk_length=5)
    with pytest.raises(ConfigError, match=r"'unlabelled' has no labels.*inputs='labels'"):
        predict(_predict_params(tmp_path))
    assert PredictionRepository(repo.store).ids("fc") == []  # nothing written


def test_another_recipe_under_the_same_tag_is_refused(tmp_path: Path, labels_model: Path) -> None:
    shutil.copytree(labels_model, tmp_path, dirs_exist_ok=True)
    with pytest.raises(ConfigError, match="Recipe mismatch"):
        _train(tmp_path, Recipe(inputs="labels", horizon=2), epochs=2)


def test_per_sequence_labels_refuse_shifting(tmp_path: Path) -> None:
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    for i in range(3):
        frames, _ = realistic(9, i)
        label = np.array([i % 2], np.int64)
        write_sequence(
            repo, f"r{i}", frames, chunk_length=4, labels=label, label_kind="per_sequence"
        )
    with pytest.raises(ConfigError, match=r"one label each.*horizon=1"):
        _train(tmp_path, Recipe(horizon=1))


def test_images_cannot_be_joined_with_labels(tmp_path: Path) -> None:
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    frames = np.zeros((9, 4, 4), np.uint8)
    write_sequence(repo, "v", frames, chunk_length=4, labels=np.zeros(9, np.int8))
    with pytest.raises(ConfigError, match=r"`inputs`.*feature-vector frames.*\(4, 4\)"):
        _train(tmp_path, Recipe(inputs="features_and_labels", horizon=1))


def _grow(
    repo: SequenceRepository, sequence_id: str, frames: np.ndarray, labels: np.ndarray
) -> None:
    """Append rows to a stored sequence the way an ingest ``--append`` does."""
    meta = repo.meta(sequence_id)
    stop = meta.length + len(frames)
    for array, rows in ((repo.frames(sequence_id), frames), (repo.labels(sequence_id), labels)):
        assert array is not None
        array.resize((stop, *array.shape[1:]))
        array[meta.length :] = rows
    record = {"uri": "more.npy", "fingerprint": "more", "start": meta.length, "stop": stop}
    repo.write_meta(
        sequence_id,
        meta.replace(length=stop, frames_written=stop, sources=(*meta.sources, record)),
    )


def test_continuing_a_grown_recording_equals_a_recompute(tmp_path: Path) -> None:
    repo, data = _world(tmp_path)
    for sid in data:  # a recording's first source, so a grown one is the same recording
        record = {"uri": f"{sid}.npy", "fingerprint": sid, "start": 0, "stop": len(data[sid][0])}
        meta = repo.meta(sid)
        repo.write_meta(sid, meta.replace(fingerprint=sid, sources=(record,)))
    _train(tmp_path, Recipe(inputs="labels", horizon=2))
    predict(_predict_params(tmp_path))
    more_frames, more_labels = realistic(11, 42)
    _grow(repo, "s1", more_frames, more_labels)
    report = predict(_predict_params(tmp_path))
    assert {e.id: e.action for e in report.sequences}["s1"] == "continue"
    preds = PredictionRepository(repo.store)
    continued = preds.read("fc", "s1")
    predict(_predict_params(tmp_path, recompute=True))
    np.testing.assert_allclose(continued, preds.read("fc", "s1"), atol=1e-5)
    assert len(continued) == len(data["s1"][0]) + 11


def test_predictions_record_the_time_each_row_forecasts(tmp_path: Path) -> None:
    repo, data = _world(tmp_path)
    length = len(data["s0"][0])
    hours = np.arange(length, dtype=np.float64) * 3600.0
    hours[5:] += 600.0  # an irregular gap: times are read, not assumed
    repo.group("s0").create_array("timestamps", shape=(length,), dtype="float64")[:] = hours
    _train(tmp_path, Recipe(horizon=3))
    predict(_predict_params(tmp_path))
    preds = PredictionRepository(repo.store)
    times = preds.target_times("fc", "s0")
    assert times is not None
    np.testing.assert_array_equal(times[:-3], hours[3:])
    np.testing.assert_array_equal(times[-3:], hours[-1] + 3600.0 * np.arange(1, 4))
    assert preds.target_times("fc", "s1") is None  # no timestamps, frame indices only
