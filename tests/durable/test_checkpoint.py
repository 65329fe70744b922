"""Checkpoints: roundtrip, atomicity, pruning, corruption, config checks, exported model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from segflow.checkpoint import CheckpointManager, Cursor
from segflow.config import ModelConfig
from segflow.engine.engine import StreamingEngine
from segflow.engine.lanes import read_lane_state
from segflow.engine.pipeline import StepReader
from segflow.errors import CheckpointError, ConfigError, StoreError
from segflow.registry import export_model, load_exported, load_exported_model, train_run_key
from storage.base import Store
from storage.local import LocalStore
from storage.urls import open_store
from tests.durable.conftest import TINY

LANES, LENGTH = 2, 5
RUN = train_run_key("tiny")


def make_engine(config: ModelConfig = TINY, lanes: int = LANES) -> StreamingEngine:
    keras.utils.set_random_seed(0)
    return StreamingEngine(config, lanes=lanes, segment_length=LENGTH, learning_rate=1e-2)


def batches(config: ModelConfig = TINY, lanes: int = LANES) -> list[dict[str, np.ndarray]]:
    """Labelled batches over three sequences; a sequence is still running after each step."""
    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(n, *config.frame_shape)).astype(np.float32) for n in (12, 9, 14)]
    labels = [(f.reshape(len(f), -1)[:, 0] > 0).astype(np.float32) for f in frames]
    reader = StepReader.from_arrays(frames, labels, lanes=lanes, segment_length=LENGTH)
    return [{k: np.array(v) for k, v in b.items()} for b in reader.iter_batches()]


def cursor(step: int = 2, lanes: int = LANES) -> Cursor:
    return Cursor("train", 0, step, ("a", "b", "c"), lanes, LENGTH, {"totals": [1.5, 2.0]})


def snapshot(engine: StreamingEngine) -> dict[str, np.ndarray]:
    """Every value a checkpoint must bring back: weights, optimizer variables, lane state."""
    values = {f"w{i}": w for i, w in enumerate(engine.model.get_weights())}
    values |= {f"opt{i}": np.array(v) for i, v in enumerate(engine.optimizer.variables)}
    return values | read_lane_state(engine.model)


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def trained_engine(steps: int = 2) -> StreamingEngine:
    engine = make_engine()
    engine.fit_epoch(batches()[:steps])
    return engine


def perturb(engine: StreamingEngine, seed: int = 1) -> None:
    """Give weights and lane state new values, without the cost of tracing a train step."""
    rng = np.random.default_rng(seed)
    lanes = engine.checkpoint_objects()["lane_state"].values()
    variables = [*engine.model.trainable_variables, *lanes]
    for variable in variables:
        variable.assign(rng.normal(size=variable.shape).astype(np.float32) * 0.3)


@pytest.fixture(params=["local", "s3"])
def ckpt_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A checkpoint store, local and on the moto S3 server."""
    if request.param == "local":
        return LocalStore(tmp_path / "ckpt")
    url = request.getfixturevalue("s3_store_url")
    return open_store(url, request.getfixturevalue("s3_storage_options"))


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "ckpt")


# ------------------------------------------------------------------------------ roundtrip


def test_roundtrip_restores_weights_optimizer_slots_and_lane_state(ckpt_store: Store) -> None:
    engine = trained_engine()
    manager = CheckpointManager(ckpt_store, RUN)
    name = manager.save(engine, cursor(), TINY)
    saved = snapshot(engine)
    assert any(np.any(v != 0) for k, v in saved.items() if k.startswith("lstm_0"))

    engine.fit_epoch(batches()[2:])  # weights, optimizer slots and lane state all move on
    assert not all(np.array_equal(v, saved[k]) for k, v in snapshot(engine).items())
    restored = manager.restore(engine)

    assert restored == cursor()
    assert_same(snapshot(engine), saved)
    assert manager.latest() == name == "ckpt-1"
    assert manager.read_config() == TINY


def test_restore_into_fresh_engine_continues_identically(local_store: LocalStore) -> None:
    engine = trained_engine()
    CheckpointManager(local_store, RUN).save(engine, cursor(), TINY)
    engine.fit_epoch(batches()[2:])
    fresh = make_engine()
    CheckpointManager(local_store, RUN).restore(fresh)

    fresh.fit_epoch(batches()[2:])

    assert_same(snapshot(fresh), snapshot(engine))


def test_manifest_records_config_cursor_versions_and_checksums(local_store: LocalStore) -> None:
    manager = CheckpointManager(local_store, RUN)
    name = manager.save(make_engine(), cursor(), TINY)

    manifest = manager.read_manifest(name)

    assert manifest["config"] == TINY.model_dump(mode="json")
    assert manifest["config_hash"] == TINY.config_hash()
    assert Cursor.from_json(manifest["cursor"]) == cursor()
    assert {"tensorflow", "keras"} <= set(manifest["versions"])
    assert manifest["created"]
    data_files = {k.rsplit("/", 1)[1] for k in local_store.list(f"runs/{RUN}/{name}")}
    assert set(manifest["files"]) == data_files - {"manifest.json"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())


def test_cursor_json_roundtrip() -> None:
    original = Cursor("predict", 0, 7, ("x",), 4, 16, {"rng": [1, 2], "nested": {"a": 1.5}})
    assert Cursor.from_json(json.loads(json.dumps(original.to_json()))) == original


# ------------------------------------------------------------------------------ atomicity, keep


def test_checkpoint_without_manifest_is_invisible(local_store: LocalStore) -> None:
    engine = make_engine()
    manager = CheckpointManager(local_store, RUN, keep=5)
    manager.save(engine, cursor(1), TINY)
    manager.save(engine, cursor(2), TINY)
    # A crash after the data files, before the manifest: ckpt-3 exists without one.
    for key in local_store.list(f"runs/{RUN}/ckpt-2"):
        if not key.endswith("manifest.json"):
            local_store.write_bytes(key.replace("ckpt-2", "ckpt-3"), local_store.read_bytes(key))

    assert manager.latest() == "ckpt-2"
    assert manager.names() == ["ckpt-1", "ckpt-2"]
    assert manager.restore(engine).step == 2
    # The next save takes a fresh number and clears the partial one.
    assert manager.save(engine, cursor(4), TINY) == "ckpt-4"
    assert not local_store.list(f"runs/{RUN}/ckpt-3")


def test_latest_is_the_highest_number_not_the_last_in_text_order(local_store: LocalStore) -> None:
    engine = make_engine()
    manager = CheckpointManager(local_store, RUN, keep=20)
    for step in range(11):
        manager.save(engine, cursor(step), TINY)

    assert manager.latest() == "ckpt-11"
    assert manager.read_cursor().step == 10


def test_no_checkpoint(local_store: LocalStore) -> None:
    manager = CheckpointManager(local_store, RUN)
    assert manager.latest() is None
    with pytest.raises(CheckpointError, match="No checkpoint under 'runs/train-tiny'"):
        manager.restore(make_engine())


def test_keep_last_n(local_store: LocalStore) -> None:
    engine = make_engine()
    manager = CheckpointManager(local_store, RUN, keep=2)
    for step in range(4):
        manager.save(engine, cursor(step), TINY)

    assert manager.names() == ["ckpt-3", "ckpt-4"]
    folders = {k.split("/")[2] for k in local_store.list(f"runs/{RUN}")}
    assert folders == {"ckpt-3", "ckpt-4"}


def test_runs_are_separate(local_store: LocalStore) -> None:
    engine = make_engine()
    CheckpointManager(local_store, "train-a").save(engine, cursor(), TINY)
    # "train-a" is a prefix of "train-ab" as text; the runs must not see each other.
    assert CheckpointManager(local_store, "train-ab").latest() is None


@pytest.mark.parametrize(
    ("run_key", "keep"),
    [
        ("../escape", 3),  # not one path component
        ("", 3),  # empty
        ("train-x", 0),  # must keep at least one
    ],
)
def test_invalid_manager_arguments(local_store: LocalStore, run_key: str, keep: int) -> None:
    with pytest.raises(ConfigError):
        CheckpointManager(local_store, run_key, keep=keep)


# ------------------------------------------------------------------------------ corruption


def _flip_byte(store: Store, key: str) -> None:
    data = bytearray(store.read_bytes(key))
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(key, bytes(data))


def _edit_manifest(store: Store, key: str, change: Any) -> None:
    manifest = json.loads(store.read_bytes(key))
    change(manifest)
    store.write_bytes(key, json.dumps(manifest).encode())


CORRUPTIONS = {
    # a data file with one byte changed: its sha256 no longer matches
    "flipped data": (lambda s, d: _flip_byte(s, f"{d}/ckpt.data-00000-of-00001"), "sha256"),
    # the index file gone
    "missing index": (lambda s, d: s.delete(f"{d}/ckpt.index"), "missing"),
    # a manifest that is not JSON
    "garbled manifest": (lambda s, d: s.write_bytes(f"{d}/manifest.json", b"{oops"), "not JSON"),
    # a manifest whose config no longer matches its recorded hash
    "edited config": (
        lambda s, d: _edit_manifest(
            s, f"{d}/manifest.json", lambda m: m["config"].update(lstm_units=[9])
        ),
        "corrupt",
    ),
    # a manifest of an unknown format version
    "unknown format": (
        lambda s, d: _edit_manifest(s, f"{d}/manifest.json", lambda m: m.update(format=99)),
        "format",
    ),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_corrupt_checkpoint_raises_checkpoint_error(
    local_store: LocalStore, corruption: str
) -> None:
    engine = make_engine()
    manager = CheckpointManager(local_store, RUN)
    manager.save(engine, cursor(), TINY)
    perturb(engine)
    before = snapshot(engine)
    damage, message = CORRUPTIONS[corruption]
    damage(local_store, f"runs/{RUN}/ckpt-1")

    with pytest.raises(CheckpointError, match=message) as caught:
        manager.restore(engine)

    assert isinstance(caught.value, StoreError)
    assert_same(snapshot(engine), before)  # nothing half-restored


# ------------------------------------------------------------------------------ config checks


def test_mismatched_config_is_refused_naming_both_hashes(local_store: LocalStore) -> None:
    CheckpointManager(local_store, RUN).save(make_engine(), cursor(), TINY)
    other = TINY.model_copy(update={"lstm_units": [16]})

    with pytest.raises(ConfigError) as caught:
        CheckpointManager(local_store, RUN).restore(make_engine(other))

    assert TINY.config_hash() in str(caught.value)
    assert other.config_hash() in str(caught.value)


def test_other_lanes_are_refused(local_store: LocalStore) -> None:
    CheckpointManager(local_store, RUN).save(make_engine(), cursor(), TINY)
    with pytest.raises(ConfigError, match="lanes=2"):
        CheckpointManager(local_store, RUN).restore(make_engine(lanes=3))


def test_save_refuses_a_config_other_than_the_engines(local_store: LocalStore) -> None:
    other = TINY.model_copy(update={"outputs": 2})
    with pytest.raises(ConfigError, match="config hash"):
        CheckpointManager(local_store, RUN).save(make_engine(), cursor(), other)


# ------------------------------------------------------------------------------ exported model

IMAGE = ModelConfig(
    frame_shape=(8, 8, 3),
    input_dtype="uint8",
    encoder="avgpool",
    pool_size=4,
    lstm_units=[8],
    head="many_to_one",
    task="multiclass",
    outputs=3,
)


@pytest.mark.parametrize("config", [TINY, IMAGE], ids=["features", "uint8-images"])
def test_exported_model_loads_safely_and_matches_the_stateless_copy(
    ckpt_store: Store, config: ModelConfig
) -> None:
    engine = make_engine(config)
    perturb(engine)  # weights unlike any fresh model's
    rng = np.random.default_rng(1)
    export_model(ckpt_store, "tiny", engine, config, meta={"checkpoint": "ckpt-7", "epochs": 2})

    got_config, manifest, model = load_exported_model(ckpt_store, "tiny")
    _, _, weights = load_exported(ckpt_store, "tiny")

    assert got_config == config
    assert manifest["checkpoint"] == "ckpt-7" and manifest["epochs"] == 2
    assert manifest["config_hash"] == config.config_hash()
    for got, want in zip(weights, engine.model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    dtype = np.uint8 if config.input_dtype == "uint8" else np.float32
    frames = (rng.uniform(0, 255, size=(3, 11, *config.frame_shape))).astype(dtype)
    inputs = {"frames": frames, "mask": np.ones((3, 11), bool)}
    np.testing.assert_allclose(
        np.asarray(model(inputs)), np.asarray(engine.stateless_copy()(inputs)), rtol=0, atol=1e-6
    )


def test_export_replaces_the_previous_one(local_store: LocalStore) -> None:
    engine = make_engine()
    export_model(local_store, "tiny", engine, TINY, meta={"checkpoint": "ckpt-1"})
    perturb(engine)
    export_model(local_store, "tiny", engine, TINY, meta={"checkpoint": "ckpt-2"})

    _, manifest, weights = load_exported(local_store, "tiny")

    assert manifest["checkpoint"] == "ckpt-2"
    np.testing.assert_array_equal(weights[0], engine.model.get_weights()[0])


def test_missing_or_corrupt_export(local_store: LocalStore) -> None:
    with pytest.raises(CheckpointError, match="No exported model 'tiny'"):
        load_exported(local_store, "tiny")
    export_model(local_store, "tiny", make_engine(), TINY, meta={})
    _flip_byte(local_store, "models/tiny/model.keras")
    with pytest.raises(CheckpointError, match="sha256"):
        load_exported(local_store, "tiny")


def test_export_refuses_meta_that_is_not_json(local_store: LocalStore) -> None:
    with pytest.raises(ConfigError, match="JSON"):
        export_model(local_store, "tiny", make_engine(), TINY, meta={"x": object()})
