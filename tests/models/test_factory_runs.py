"""A model of the user's own (``examples/custom_model.py``: a per-frame CNN, a GRU inside a
nested ``Sequential``, an LSTM, a custom layer) keeps every guarantee of the built-in ones.

``ModelConfig(model_factory=...)`` builds it in the engine. Its streaming, lane resets, resumed
training and continued predictions are checked beside the built-in cells (the ``custom`` case
of tests/models/test_cells.py and tests/models/test_cell_runs.py). Here: the export records the
factory and loads in safe mode; a factory that now builds another architecture, or can no
longer be imported, is a clear error; an inferred model takes the factory.
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
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.engine.factory import ModelSpec, architecture_digest
from segflow.errors import SegflowError
from segflow.registry import load_exported_model, load_model
from segflow.training import train
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

FACTORY = "examples.custom_model:build"


def _config(head: str = "many_to_many", factory: str = FACTORY) -> ModelConfig:
    return ModelConfig(frame_shape=(6, 6), model_factory=factory, head=head)


def _frames(config: ModelConfig, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(length, *config.frame_shape)).astype(np.float32)


# -- durable runs ------------------------------------------------------------------------------
# Streaming in segments, lane resets (tests/models/test_cells.py), a stopped and resumed
# training run and a grown recording's continuation (tests/models/test_cell_runs.py) run the
# example as the ``custom`` case beside the built-in cells.

RUN_LENGTHS = (13, 7, 10, 16)


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint store holding the example trained for one epoch as ``mine`` (read only)."""
    root = tmp_path_factory.mktemp("trained")
    _world(root, _config())
    train(_params(root, _config(), epochs=1))
    return root / "ckpt"


# -- exports -----------------------------------------------------------------------------------


def test_the_export_records_the_factory_and_loads_in_safe_mode(trained: Path) -> None:
    config = _config()
    loaded_config, manifest, model = load_exported_model(LocalStore(trained), "mine")
    assert loaded_config == config
    assert isinstance(model.get_layer("feature_scale"), custom_model.FeatureScale)
    spec = ModelSpec.from_config(config, batch_size=None, stateful=False, seed=0)
    assert manifest["model_factory"] == {
        "path": FACTORY,
        "spec": spec.to_json(),
        "architecture": architecture_digest(model),
    }


def test_a_factory_building_another_architecture_is_refused(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(custom_model, "LSTM_UNITS", 7)
    with pytest.raises(SegflowError, match=r"'examples\.custom_model:build'.*architecture"):
        load_model(LocalStore(trained), "mine")


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
