"""The model registry: keys, export lookups, the latest training checkpoint, load_model."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from segflow import registry
from segflow.checkpoint import CheckpointManager, Cursor
from segflow.engine.engine import StreamingEngine
from segflow.errors import CheckpointError, InvalidIdError
from segflow.registry import (
    export_model,
    export_prefix,
    exported_from,
    has_export,
    latest_training_checkpoint,
    load_model,
    predict_run_key,
    train_run_key,
    weights_digest,
)
from storage.local import LocalStore
from tests.durable.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
LANES, LENGTH = 2, 4


@pytest.mark.parametrize(
    ("key", "want"),
    [
        (train_run_key, "train-tiny"),  # runs/train-<tag>: the training run's checkpoints
        (predict_run_key, "predict-tiny"),  # runs/predict-<tag>: the prediction run's
        (export_prefix, "models/tiny"),  # the exported model's folder
    ],
)
def test_keys(key: Callable[[str], str], want: str) -> None:
    assert key("tiny") == want


def engine(seed: int = 0) -> StreamingEngine:
    """An engine with weights of its own: seeded random values."""
    made = StreamingEngine(TINY, lanes=LANES, segment_length=LENGTH)
    rng = np.random.default_rng(seed)
    made.model.set_weights(
        [rng.normal(size=w.shape).astype(w.dtype) for w in made.model.get_weights()]
    )
    return made


def save_training_checkpoint(store: LocalStore, engine: StreamingEngine) -> str:
    cursor = Cursor(kind="train", epoch=1, step=0, ids=("a",), lanes=LANES, segment_length=LENGTH)
    return CheckpointManager(store, train_run_key("tiny")).save(engine, cursor, TINY)


def test_nothing_stored(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert not has_export(store, "tiny")
    assert exported_from(store, "tiny") is None
    assert latest_training_checkpoint(store, "tiny") is None
    with pytest.raises(CheckpointError, match=r"models/tiny/.*runs/train-tiny/.*Train"):
        load_model(store, "tiny")


def test_latest_training_checkpoint_is_loaded_without_export(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = engine(seed=0)
    save_training_checkpoint(store, first)
    newest = engine(seed=1)
    assert save_training_checkpoint(store, newest) == "ckpt-2"

    assert latest_training_checkpoint(store, "tiny") == "ckpt-2"
    model = load_model(store, "tiny")

    assert model.checkpoint == "runs/train-tiny/ckpt-2" and model.config == TINY
    for got, want in zip(model.weights, newest.model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert model.digest == weights_digest(newest.model.get_weights())
    assert model.digest != weights_digest(first.model.get_weights())


def test_export_wins_over_training_checkpoints(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    save_training_checkpoint(store, engine(seed=0))
    exported = engine(seed=2)
    export_model(store, "tiny", exported, TINY, meta={"checkpoint": "ckpt-9"})

    assert has_export(store, "tiny") and exported_from(store, "tiny") == "ckpt-9"
    model = load_model(store, "tiny")

    assert model.checkpoint == "models/tiny:ckpt-9"
    assert model.digest == weights_digest(exported.model.get_weights())
    assert not has_export(store, "other")  # per tag


def test_unreadable_export_manifest_is_current_for_no_checkpoint(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("models/tiny/manifest.json", b"not json")
    assert has_export(store, "tiny") and exported_from(store, "tiny") is None


def test_tag_with_path_characters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdError, match="model tag"):
        load_model(LocalStore(tmp_path), "../x")


def test_old_import_paths_still_work() -> None:
    from segflow.checkpoint import export_model as old_export
    from segflow.predicting import LoadedModel
    from segflow.predicting import load_model as old_load

    assert old_export is registry.export_model
    assert old_load is registry.load_model and LoadedModel is registry.LoadedModel


def test_registry_and_predicting_import_without_tensorflow() -> None:
    code = "import sys, segflow.registry, segflow.predicting; print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "False"


def test_export_loads_in_a_fresh_interpreter(tmp_path: Path) -> None:
    # Nothing but the registry imported: segflow's own layers must still be found.
    export_model(LocalStore(tmp_path), "tiny", engine(), TINY, meta={"checkpoint": "ckpt-1"})
    code = (
        "from segflow.registry import load_model\nfrom storage.local import LocalStore\n"
        f"print(load_model(LocalStore({str(tmp_path)!r}), 'tiny').checkpoint)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "models/tiny:ckpt-1"
