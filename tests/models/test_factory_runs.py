"""A model of the user's own (``examples/custom_model.py``: a per-frame CNN, a GRU inside a
nested ``Sequential``, an LSTM, a custom layer) keeps every guarantee of the built-in ones.

``ModelConfig(model_factory=...)`` builds it in the engine: streaming in segments equals a
whole-sequence pass, a lane reset leaves the others bit-for-bit, a stopped training run
resumes to the weights of an uninterrupted one, a grown recording continues like a
recompute, and the export records the factory and loads in safe mode; a factory that now
builds another architecture, or can no longer be imported, is a clear error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from examples import custom_model
from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.engine.engine import StreamingEngine
from segflow.engine.factory import ModelSpec, architecture_digest
from segflow.engine.lanes import read_lane_state, reset_lanes, state_shapes
from segflow.engine.model import activate
from segflow.engine.pipeline import StepReader
from segflow.errors import SegflowError
from segflow.predicting import predict
from segflow.progress import StepEvent
from segflow.registry import load_exported, load_exported_model, load_model
from segflow.training import train
from storage.local import LocalStore
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.durable.test_recipes import _grow
from tests.engine.store_helpers import write_sequence

FACTORY = "examples.custom_model:build"
LENGTHS = (11, 4, 9, 7, 2)


def _config(head: str = "many_to_many", factory: str = FACTORY) -> ModelConfig:
    return ModelConfig(frame_shape=(6, 6), model_factory=factory, head=head)


def _frames(config: ModelConfig, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(length, *config.frame_shape)).astype(np.float32)


# -- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["many_to_many", "many_to_one"])
def test_segmented_streaming_equals_a_whole_sequence_pass(head: str) -> None:
    config = _config(head)
    frames = [_frames(config, n, i) for i, n in enumerate(LENGTHS)]
    engine = StreamingEngine(config, lanes=2, segment_length=3, seed=1)
    assert state_shapes(engine.model) == {"block/gru/h": (6,), "lstm/h": (5,), "lstm/c": (5,)}
    reader = StepReader.from_arrays(frames, lanes=2, segment_length=3)
    got = dict(engine.predict(reader.iter_batches(), reader.steps(), reader.lengths))
    whole = engine.stateless_copy()
    for i, x in enumerate(frames):
        logits = whole({"frames": x[None], "mask": np.ones((1, len(x)), bool)})
        want = np.asarray(activate(config, logits))[0]
        np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_resetting_a_lane_leaves_the_others_bit_for_bit() -> None:
    config = _config()
    engine = StreamingEngine(config, lanes=3, segment_length=4, seed=2)
    x = np.stack([_frames(config, 4, i) for i in range(3)])
    engine.predict_step(x, np.ones((3, 4), bool), np.ones(3, bool))
    before = read_lane_state(engine.model)
    assert all(np.abs(v).sum() > 0 for v in before.values())
    reset_lanes(engine.model, np.array([False, True, False]))
    after = read_lane_state(engine.model)
    for key in before:
        np.testing.assert_array_equal(after[key][[0, 2]], before[key][[0, 2]])
        assert not after[key][1].any()


# -- durable runs ------------------------------------------------------------------------------

RUN_LENGTHS = (13, 7, 10, 16)


class Stop(Exception):
    """Raised from a progress callback to simulate a crash."""


def _world(root: Path, config: ModelConfig) -> SequenceRepository:
    repo = SequenceRepository(LocalStore(root / "data"))
    for i, length in enumerate(RUN_LENGTHS):
        labels = np.cumsum(np.random.default_rng(10 + i).normal(size=length)).astype(np.float32)
        write_sequence(repo, f"s{i}", _frames(config, length, i), chunk_length=4, labels=labels)
        record = {"uri": f"s{i}.npy", "fingerprint": f"s{i}", "start": 0, "stop": length}
        meta = repo.meta(f"s{i}")
        repo.write_meta(f"s{i}", meta.replace(fingerprint=f"s{i}", sources=(record,)))
    return repo


def _params(root: Path, config: ModelConfig | None, **changes: Any) -> TrainParams:
    fields: dict[str, Any] = {
        "store": StoreConfig(url=str(root / "data")),
        "checkpoints": CheckpointConfig(url=str(root / "ckpt"), every_steps=2),
        "stream": StreamConfig(lanes=2, segment_length=4),
        "model": config,
        "epochs": 2,
        "model_tag": "mine",
        "learning_rate": 1e-2,
    }
    return TrainParams(**{**fields, **changes})


def test_stopped_and_resumed_training_matches_uninterrupted(tmp_path: Path) -> None:
    config = _config()
    _world(tmp_path / "a", config)
    _world(tmp_path / "b", config)
    reference = train(_params(tmp_path / "a", config))

    def stop(event: StepEvent) -> None:
        if event.step == 5:
            raise Stop

    with pytest.raises(Stop):
        train(_params(tmp_path / "b", config), on_step=stop)
    resumed = train(_params(tmp_path / "b", config))
    assert resumed.resumed_from is not None and resumed.history == reference.history
    want = load_exported(LocalStore(tmp_path / "a" / "ckpt"), "mine")[2]
    got = load_exported(LocalStore(tmp_path / "b" / "ckpt"), "mine")[2]
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


def _predict(root: Path, **changes: Any) -> Any:
    return predict(
        PredictParams(
            store=StoreConfig(url=str(root / "data")),
            checkpoints=CheckpointConfig(url=str(root / "ckpt"), every_steps=2),
            stream=StreamConfig(lanes=3, segment_length=5),
            model_tag="mine",
            **changes,
        )
    )


def test_continuing_a_grown_recording_equals_a_recompute(tmp_path: Path) -> None:
    config = _config()
    repo = _world(tmp_path, config)
    train(_params(tmp_path, config, epochs=1))
    _predict(tmp_path)
    _grow(repo, "s1", _frames(config, 9, 99), np.arange(9, dtype=np.float32))
    report = _predict(tmp_path)
    assert {s.id: s.action for s in report.sequences}["s1"] == "continue"
    preds = PredictionRepository(repo.store)
    continued = preds.read("mine", "s1")
    _predict(tmp_path, recompute=True)
    np.testing.assert_allclose(continued, preds.read("mine", "s1"), atol=1e-5)


# -- exports -----------------------------------------------------------------------------------


def test_the_export_records_the_factory_and_loads_in_safe_mode(tmp_path: Path) -> None:
    config = _config()
    _world(tmp_path, config)
    train(_params(tmp_path, config, epochs=1))
    loaded_config, manifest, model = load_exported_model(LocalStore(tmp_path / "ckpt"), "mine")
    assert loaded_config == config
    assert isinstance(model.get_layer("feature_scale"), custom_model.FeatureScale)
    spec = ModelSpec.from_config(config, batch_size=None, stateful=False, seed=0)
    assert manifest["model_factory"] == {
        "path": FACTORY,
        "spec": spec.to_json(),
        "architecture": architecture_digest(model),
    }


def test_a_factory_building_another_architecture_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config()
    _world(tmp_path, config)
    train(_params(tmp_path, config, epochs=1))
    monkeypatch.setattr(custom_model, "LSTM_UNITS", 7)
    with pytest.raises(SegflowError, match=r"'examples\.custom_model:build'.*architecture"):
        load_model(LocalStore(tmp_path / "ckpt"), "mine")


def test_a_factory_that_can_no_longer_be_imported_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "code" / "gone_factory_mod.py"
    module.parent.mkdir()
    module.write_text("from examples.custom_model import build\n")
    monkeypatch.syspath_prepend(str(module.parent))
    config = _config(factory="gone_factory_mod:build")
    _world(tmp_path, config)
    train(_params(tmp_path, config, epochs=1))
    module.unlink()
    monkeypatch.delitem(sys.modules, "gone_factory_mod")
    with pytest.raises(SegflowError, match=r"'gone_factory_mod:build'.*could not be imported"):
        load_model(LocalStore(tmp_path / "ckpt"), "mine")


def test_an_inferred_model_takes_the_factory(tmp_path: Path) -> None:
    # What `segflow train --model-factory` does: the data give the spec, the factory the rest.
    config = _config()
    _world(tmp_path, config)
    train(_params(tmp_path, None, epochs=1, model_factory=FACTORY))
    inferred = load_model(LocalStore(tmp_path / "ckpt"), "mine").config
    assert inferred.model_factory == FACTORY
    assert (inferred.frame_shape, inferred.head, inferred.task) == (
        (6, 6),
        "many_to_many",
        "regression",
    )
