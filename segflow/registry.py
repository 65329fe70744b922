"""The model registry: where a model tag's model and runs live in a checkpoint store.

A *model tag* names a model. Everything stored for it is found from here::

    runs/train-<tag>/ckpt-<n>/...      checkpoints of its training run   (train_run_key)
    runs/predict-<tag>/ckpt-<n>/...    checkpoints of its prediction run (predict_run_key)
    runs/predict.shard-<i>-of-<n>-<tag>/...
                                       checkpoints of shard i of n of a sharded prediction
                                       run (shard_run_key)
    models/<tag>/model.keras           the exported stateless model      (export_prefix)
    models/<tag>/manifest.json         written LAST: the export exists only once it does

:func:`load_model` gives the model predictions use: the export, else the latest checkpoint of
the training run. The checkpoint files themselves are :mod:`segflow.checkpoint`'s business.

Importing this module does not import TensorFlow or Keras; the functions that need them do.

>>> train_run_key("default"), predict_run_key("default"), export_prefix("default")
('train-default', 'predict-default', 'models/default')
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segflow.config import ModelConfig, Recipe
from segflow.errors import CheckpointError, ConfigError, KeyNotFoundError
from segflow.ids import validate_id

if TYPE_CHECKING:
    import keras

    from segflow.engine.engine import StreamingEngine
    from storage.base import Store

__all__ = [
    "MODELS",
    "MODEL_FILE",
    "LoadedModel",
    "best_run_key",
    "export_model",
    "export_prefix",
    "exported_from",
    "has_export",
    "latest_training_checkpoint",
    "load_exported",
    "load_exported_model",
    "load_model",
    "model_fingerprint",
    "predict_run_key",
    "shard_run_key",
    "train_run_key",
    "training_engine",
    "weights_digest",
]

#: Top-level folder of the exported models in a checkpoint store.
MODELS = "models"
#: The exported model's file (``keras.saving`` format) in its folder.
MODEL_FILE = "model.keras"


# -- keys --------------------------------------------------------------------------------------


def train_run_key(model_tag: str) -> str:
    """The checkpoint run key of training ``model_tag``.

    >>> train_run_key("tiny")
    'train-tiny'
    """
    return f"train-{model_tag}"


def best_run_key(model_tag: str) -> str:
    """The checkpoint run key holding the best epoch of training ``model_tag`` (early stopping).

    >>> best_run_key("tiny")
    'best-tiny'
    """
    return f"best-{model_tag}"


def predict_run_key(model_tag: str) -> str:
    """The checkpoint run key of predicting with ``model_tag``.

    >>> predict_run_key("tiny")
    'predict-tiny'
    """
    return f"predict-{model_tag}"


def shard_run_key(model_tag: str, index: int, count: int) -> str:
    """The checkpoint run key of shard ``index`` of ``count`` of predicting with ``model_tag``.

    Each shard of a sharded run checkpoints under its own key, so shards run at once and a
    retried one resumes its own progress. The ``predict.`` prefix never begins a
    :func:`predict_run_key` (always ``predict-``), so no tag's keys collide with a shard's.

    >>> shard_run_key("tiny", 0, 2)
    'predict.shard-0-of-2-tiny'
    """
    if not 0 <= index < count:
        raise ConfigError(
            f"Received shard index={index} of count={count}, expected 0 <= index < count."
        )
    return f"predict.shard-{index}-of-{count}-{model_tag}"


def export_prefix(model_tag: str) -> str:
    """The folder of the exported model ``model_tag`` in a checkpoint store.

    >>> export_prefix("tiny")
    'models/tiny'
    """
    return f"{MODELS}/{model_tag}"


def _manifest_key(model_tag: str) -> str:
    from segflow.checkpoint import MANIFEST  # the same file name as a checkpoint's

    return f"{export_prefix(model_tag)}/{MANIFEST}"


# -- lookups -----------------------------------------------------------------------------------


def has_export(store: Store, model_tag: str) -> bool:
    """Whether ``store`` holds an export of ``model_tag`` (its manifest is written)."""
    return store.exists(_manifest_key(model_tag))


def exported_from(store: Store, model_tag: str) -> str | None:
    """The checkpoint the export of ``model_tag`` was made from, or None.

    None as well when there is no export, or its manifest is unreadable or records none; the
    export is then not current for any checkpoint.
    """
    try:
        manifest = json.loads(store.read_bytes(_manifest_key(model_tag)))
    except (KeyNotFoundError, ValueError):
        return None
    checkpoint = manifest.get("checkpoint") if isinstance(manifest, dict) else None
    return checkpoint if isinstance(checkpoint, str) else None


def latest_training_checkpoint(store: Store, model_tag: str) -> str | None:
    """The newest complete checkpoint (``ckpt-<n>``) of training ``model_tag``, or None."""
    from segflow.checkpoint import CheckpointManager

    return CheckpointManager(store, train_run_key(model_tag)).latest()


def model_fingerprint(store: Store, model_tag: str) -> str:
    """A digest of the model :func:`load_model` would load, read from its manifest only.

    The export's manifest (else that of the latest training checkpoint) records the sha256
    of every weights file, so the digest changes whenever the weights do; it costs a listing
    and one small read, where loading the weights costs seconds. Workers key the models they
    keep by it.

    Raises:
        CheckpointError: If there is neither an export nor a training checkpoint.
    """
    from segflow.checkpoint import MANIFEST, CheckpointManager

    validate_id(model_tag, what="model tag")
    key = _manifest_key(model_tag)
    if not has_export(store, model_tag):
        manager = CheckpointManager(store, train_run_key(model_tag))
        name = manager.latest()
        if name is None:
            _load_training_checkpoint(store, model_tag)  # raises its "no model" error
        key = f"{manager.prefix}/{name}/{MANIFEST}"
    try:
        return hashlib.sha256(store.read_bytes(key)).hexdigest()[:32]
    except KeyNotFoundError:  # replaced meanwhile: a digest no model has
        return "missing"


# -- exporting ---------------------------------------------------------------------------------


def export_model(
    store: Store,
    model_tag: str,
    engine: StreamingEngine,
    config: ModelConfig,
    *,
    meta: dict[str, Any],
) -> None:
    """Export the engine's weights as a stateless Keras model under ``models/<model_tag>/``.

    The manifest holds ``meta`` (e.g. ``checkpoint``, the run's history) plus the config, its
    hash, the creation time, the versions and the model file's sha256, and for a model of
    the user's own its factory, spec and architecture digest. It is deleted before
    the model file is replaced and written last, so a reader never pairs a new file with an
    old manifest.

    Args:
        store: The checkpoint store.
        model_tag: The model's tag.
        engine: The engine whose weights are exported.
        config: The engine's configuration (checked).
        meta: JSON-serialisable fields for the manifest.

    Raises:
        ConfigError: On an invalid tag, ``config`` differing from the engine's, or ``meta``
            that is not JSON-serialisable.
    """
    from segflow.checkpoint import check_same_config, dump_manifest, file_record, manifest_identity

    validate_id(model_tag, what="model tag")
    check_same_config(config, engine.config, "the engine")
    prefix = export_prefix(model_tag)
    try:
        manifest = {**meta, "checkpoint": meta.get("checkpoint")}
        json.dumps(manifest)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Received `meta` that is not JSON-serialisable: {error}") from None
    with tempfile.TemporaryDirectory(prefix="segflow-export-") as tmp:
        path = Path(tmp) / MODEL_FILE
        model = engine.stateless_copy()
        model.save(path)
        data = path.read_bytes()
    if config.model_factory is not None:
        from segflow.engine.factory import ModelSpec, factory_record

        spec = ModelSpec.from_config(config, batch_size=None, stateful=False, seed=engine.seed)
        manifest["model_factory"] = factory_record(config.model_factory, spec, model)
    store.delete(_manifest_key(model_tag))
    store.write_bytes(f"{prefix}/{MODEL_FILE}", data)
    manifest |= {
        **manifest_identity(config),
        "kind": "model",
        "model_tag": model_tag,
        "files": {MODEL_FILE: file_record(data)},
    }
    store.write_bytes(_manifest_key(model_tag), dump_manifest(manifest))


def load_exported_model(
    store: Store, model_tag: str
) -> tuple[ModelConfig, dict[str, Any], keras.Model]:
    """Load the exported model ``model_tag`` with ``safe_mode=True``.

    Returns:
        ``(config, manifest, model)``: the model is stateless (any batch size).

    Raises:
        CheckpointError: If there is no such export, or it is corrupt, or its model factory
            can no longer be imported or now builds another architecture.
    """
    import keras

    from segflow.checkpoint import download_files, manifest_config, read_manifest_file
    from segflow.engine.model import FrameEncoder, ToFloat
    from segflow.engine.standardize import FillMissing, Standardize

    # Named explicitly: the file refers to segflow's own layers, which Keras finds only if
    # they are registered or given here.
    own = (FrameEncoder, ToFloat, Standardize, FillMissing)
    custom = {keras.saving.get_registered_name(c): c for c in own}

    validate_id(model_tag, what="model tag")
    prefix, key = export_prefix(model_tag), _manifest_key(model_tag)
    manifest = read_manifest_file(store, key, f"exported model {model_tag!r}")
    config = manifest_config(manifest, key)
    if config.model_factory is not None:
        custom |= _factory_objects(config.model_factory, manifest, model_tag)
    with tempfile.TemporaryDirectory(prefix="segflow-export-") as tmp:
        files = manifest.get("files")
        if not isinstance(files, dict) or MODEL_FILE not in files:
            raise CheckpointError(
                f"Model manifest {key} in store {store.url!r} is corrupt: "
                f"expected a 'files' entry for {MODEL_FILE!r}."
            )
        download_files(store, prefix, {MODEL_FILE: files[MODEL_FILE]}, Path(tmp))
        try:
            model = keras.saving.load_model(
                Path(tmp) / MODEL_FILE, custom_objects=custom, compile=False, safe_mode=True
            )
        except Exception as error:  # noqa: BLE001  (keras raises many kinds on a bad file)
            raise CheckpointError(
                f"Exported model {prefix}/{MODEL_FILE} in store {store.url!r} could not be "
                f"loaded: {error}"
            ) from None
    return config, manifest, model


def _factory_objects(path: str, manifest: dict[str, Any], model_tag: str) -> dict[str, Any]:
    """The custom objects of the factory that built export ``model_tag``, once it is checked
    to build the architecture recorded at export (its own code is re-imported, nothing is
    unpickled)."""
    from segflow.engine.factory import check_factory_record, factory_custom_objects

    try:
        check_factory_record(manifest.get("model_factory"), what=f"exported model {model_tag!r}")
        return factory_custom_objects(path)
    except ConfigError as error:
        raise CheckpointError(f"Exported model {model_tag!r} cannot be loaded: {error}") from None


def load_exported(
    store: Store, model_tag: str
) -> tuple[ModelConfig, dict[str, Any], list[np.ndarray]]:
    """Load the exported model ``model_tag``; return ``(config, manifest, weights)``.

    The weights are in the order of ``build_model(config, ...).get_weights()`` (stateful and
    stateless copies share it), ready for ``engine.model.set_weights(weights)``.

    Raises:
        CheckpointError: If there is no such export, or it is corrupt.
    """
    config, manifest, model = load_exported_model(store, model_tag)
    return config, manifest, model.get_weights()


# -- the model predictions use -----------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A trained model ready to go into an engine.

    Attributes:
        config: Its configuration.
        weights: Weights in ``build_model(config, ...).get_weights()`` order.
        checkpoint: Where it came from: ``models/<tag>:<checkpoint>`` or
            ``runs/train-<tag>/ckpt-<n>``.
        digest: Digest of the weights; changes whenever the model does.
        recipe: What the model was trained to see and predict (inputs, horizon, windows).
        class_names: Its classes by index, when it learned text labels (an export's).
    """

    config: ModelConfig
    weights: list[np.ndarray]
    checkpoint: str
    digest: str
    recipe: Recipe = field(default_factory=Recipe)
    class_names: tuple[str, ...] = ()


def load_model(store: Store, model_tag: str) -> LoadedModel:
    """Load the exported model ``model_tag``, else the latest checkpoint of its training run.

    Args:
        store: The checkpoint store.
        model_tag: The model's tag.

    Returns:
        The model's configuration, weights, origin and digest.

    Raises:
        InvalidIdError: If ``model_tag`` is not a valid id.
        CheckpointError: If there is neither, or what is there is corrupt.
    """
    validate_id(model_tag, what="model tag")
    if has_export(store, model_tag):
        config, manifest, weights = load_exported(store, model_tag)
        origin = manifest.get("checkpoint") or manifest.get("created")
        where = f"{export_prefix(model_tag)}:{origin}"
        recipe = Recipe.from_record(manifest)
        names = tuple(str(name) for name in manifest.get("class_names") or ())
        return LoadedModel(config, weights, where, weights_digest(weights), recipe, names)
    return _load_training_checkpoint(store, model_tag)


def _load_training_checkpoint(store: Store, model_tag: str) -> LoadedModel:
    """The weights of the latest checkpoint of training ``model_tag``."""
    from segflow.checkpoint import CheckpointManager

    manager = CheckpointManager(store, train_run_key(model_tag))
    name = manager.latest()
    if name is None:
        raise CheckpointError(
            f"No model for tag {model_tag!r} in checkpoint store {store.url!r}: neither an "
            f"export under {export_prefix(model_tag)}/ nor a checkpoint under "
            f"{manager.prefix}/. Train (and export) the model first."
        )
    config, cursor = manager.read_config(name), manager.read_cursor(name)
    recipe = Recipe.from_record(cursor.extra)
    # The training run's own shape (lanes and segments, or windows), so what it saved
    # restores; only the weights are kept.
    engine = training_engine(config, recipe, lanes=cursor.lanes, length=cursor.segment_length)
    manager.restore(engine, name)
    weights = engine.model.get_weights()
    where = f"{manager.prefix}/{name}"
    return LoadedModel(config, weights, where, weights_digest(weights), recipe)


def training_engine(config: ModelConfig, recipe: Recipe, *, lanes: int, length: int) -> Any:
    """An engine of the kind that trains with ``recipe``: a :class:`StreamingEngine` over
    ``lanes`` lanes and segments of ``length``, or a windowed engine (``length`` = the
    window's time steps, ``lanes`` = windows per batch)."""
    if recipe.windowed:
        from segflow.windowed import WindowEngine

        return WindowEngine(config, time_steps=length, batch_size=lanes)
    from segflow.engine.engine import StreamingEngine

    return StreamingEngine(config, lanes=lanes, segment_length=length)


def weights_digest(weights: Sequence[np.ndarray]) -> str:
    """A digest of ``weights`` (dtypes, shapes and values); changes whenever the model does.

    >>> weights_digest([np.zeros(2, np.float32)]) == weights_digest([np.zeros(2, np.float32)])
    True
    >>> weights_digest([np.zeros(2, np.float32)]) == weights_digest([np.zeros(2, np.float64)])
    False
    """
    hasher = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:32]
