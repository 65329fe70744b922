"""Checkpoints of a streaming run, and the manifests checkpoints and exports share.

Layout in the checkpoint store (its own :class:`~storage.base.Store`, local or S3)::

    runs/<run_key>/ckpt-<n>/ckpt.index                 tf.train.Checkpoint files: weights,
    runs/<run_key>/ckpt-<n>/ckpt.data-00000-of-00001   optimizer slots and lane (LSTM) state
    runs/<run_key>/ckpt-<n>/manifest.json              written LAST: the checkpoint exists
                                                       only once its manifest does

Which run keys and exported models belong to a model tag (``train-<tag>``, ``models/<tag>``),
exporting and loading models: :mod:`segflow.registry`.

``model.save``/``save_weights`` skip the LSTM state of a stateful model, so checkpoints go
through ``tf.train.Checkpoint`` over :meth:`StreamingEngine.checkpoint_objects`. TensorFlow
writes them to a local temporary directory; each file is then uploaded through the store
(so S3 works the same) with its sha256 in the manifest, and checked on restore.

A manifest records the :class:`~segflow.config.ModelConfig` and its hash, the
:class:`Cursor` (where the run is), the creation time and the TensorFlow/Keras versions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import keras
import numpy as np
import tensorflow as tf
from pydantic import ValidationError

from segflow.config import ModelConfig
from segflow.engine.factory import ModelSpec, check_factory_record, factory_record
from segflow.errors import CheckpointError, ConfigError, KeyNotFoundError
from segflow.registry import export_model, load_exported, load_exported_model  # moved there
from storage.validation import require_positive_int

if TYPE_CHECKING:
    from storage.base import Store


class Checkpointed(Protocol):
    """What a checkpoint saves and restores: an engine, stateful or windowed.

    ``lanes`` and ``segment_length`` are the engine's batch shape (a windowed engine's batch
    size and time steps), checked against a cursor before a restore.
    """

    config: ModelConfig

    @property
    def lanes(self) -> int:
        """Lanes (or windows per batch)."""

    @property
    def segment_length(self) -> int:
        """Frames per step (or rows per window)."""

    def checkpoint_objects(self) -> dict[str, Any]:
        """Objects for ``tf.train.Checkpoint(**objects)``."""


__all__ = [
    "MANIFEST",
    "RUNS",
    "CheckpointManager",
    "Checkpointed",
    "Cursor",
    "check_same_config",
    "download_files",
    "dump_manifest",
    "export_model",
    "file_record",
    "load_exported",
    "load_exported_model",
    "manifest_config",
    "manifest_identity",
    "read_manifest_file",
]

#: Top-level folder of the runs' checkpoints.
RUNS = "runs"
#: File name of every checkpoint's and export's manifest.
MANIFEST = "manifest.json"
#: Version of the manifest layout, checked on read.
FORMAT = 1
_CKPT_PREFIX = "ckpt"  # tf.train.Checkpoint.write(<tmp>/ckpt) -> ckpt.index, ckpt.data-*
_NAME = re.compile(r"^ckpt-(\d+)$")
# Run keys are "<kind>-<model tag>", so they may be a little longer than an id.
_RUN_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$")


@dataclass(frozen=True)
class Cursor:
    """Where a run is: enough to carry on exactly from a checkpoint.

    Attributes:
        kind: ``train`` or ``predict``.
        epoch: Completed epochs (training; 0 for a prediction pass).
        step: Next scheduler step index within the epoch (or pass).
        ids: The sequences, in schedule order.
        lanes: Lanes of the schedule.
        segment_length: Frames per lane per step.
        extra: Anything else the run needs to carry on (metrics so far...); JSON-serialisable.
    """

    kind: Literal["train", "predict"]
    epoch: int
    step: int
    ids: tuple[str, ...]
    lanes: int
    segment_length: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["ids"] = list(self.ids)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cursor:
        """Build from :meth:`to_json` output."""
        return cls(**{**data, "ids": tuple(data["ids"]), "extra": dict(data.get("extra", {}))})


class CheckpointManager:
    """Saves, lists, prunes and restores the checkpoints of one run.

    Args:
        store: The checkpoint store.
        run_key: Identifies the run, e.g. ``train-<model_tag>``; one path component.
        keep: Complete checkpoints kept; older ones are deleted after each save.

    Example::

        manager = CheckpointManager(open_store("./ckpts"), "train-default")
        name = manager.save(engine, cursor, engine.config)
        cursor = manager.restore(engine)        # the latest one
    """

    def __init__(self, store: Store, run_key: str, *, keep: int = 3) -> None:
        if not isinstance(run_key, str) or not _RUN_KEY.match(run_key) or ".." in run_key:
            raise ConfigError(
                f"Invalid run key {run_key!r}: expected 1-160 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit and without '..'."
            )
        require_positive_int("keep", keep)
        self.store = store
        self.run_key = run_key
        self.keep = keep
        self.prefix = f"{RUNS}/{run_key}"

    def __repr__(self) -> str:
        return f"CheckpointManager({self.store.url!r}, {self.run_key!r}, keep={self.keep})"

    # -- listing ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Return the complete checkpoints (those with a manifest), oldest first."""
        return [f"ckpt-{n}" for n, complete in sorted(self._scan().items()) if complete]

    def latest(self) -> str | None:
        """Return the newest complete checkpoint, or None if there is none."""
        names = self.names()
        return names[-1] if names else None

    def _scan(self) -> dict[int, bool]:
        """Map every checkpoint number found (complete or not) to whether it has a manifest."""
        found: dict[int, bool] = {}
        for key in self.store.list(self.prefix):
            parts = key[len(self.prefix) + 1 :].split("/")
            match = _NAME.match(parts[0])
            if match:
                number = int(match[1])
                found[number] = found.get(number, False) or parts[1:] == [MANIFEST]
        return found

    def _where(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    # -- saving ----------------------------------------------------------------------------

    def save(self, engine: Checkpointed, cursor: Cursor, config: ModelConfig) -> str:
        """Write a checkpoint of ``engine`` at ``cursor``; return its name (``ckpt-<n>``).

        The data files are uploaded first and the manifest last, so a crash at any point
        leaves either the complete checkpoint or an invisible partial one.

        Raises:
            ConfigError: If ``config`` is not the engine's configuration, or ``cursor`` does
                not match the engine's lanes and segment length.
        """
        check_same_config(config, engine.config, "the engine")
        _check_cursor_fits(cursor, engine)
        name = f"ckpt-{max(self._scan(), default=0) + 1}"
        files = _upload_tf_checkpoint(self.store, self._where(name), engine)
        manifest = {
            **manifest_identity(config),
            "kind": "checkpoint",
            "name": name,
            "run_key": self.run_key,
            "cursor": cursor.to_json(),
            "files": files,
        }
        if config.model_factory is not None:
            manifest["model_factory"] = _factory_record(engine, config)
        self.store.write_bytes(f"{self._where(name)}/{MANIFEST}", dump_manifest(manifest))
        self._prune()
        return name

    def _prune(self) -> None:
        scan = self._scan()
        complete = sorted(n for n, ok in scan.items() if ok)
        newest = complete[-1] if complete else 0
        stale = complete[: -self.keep] + [n for n, ok in scan.items() if not ok and n < newest]
        for number in stale:
            where = self._where(f"ckpt-{number}")
            # Manifest first: a checkpoint being deleted is never visible half-deleted.
            self.store.delete(f"{where}/{MANIFEST}")
            self.store.delete_prefix(where)

    # -- reading ---------------------------------------------------------------------------

    def read_manifest(self, name: str | None = None) -> dict[str, Any]:
        """Return the manifest of checkpoint ``name`` (default: the latest).

        Raises:
            CheckpointError: If there is no such checkpoint or its manifest is unreadable.
        """
        name = self._resolve(name)
        manifest = read_manifest_file(self.store, f"{self._where(name)}/{MANIFEST}", "checkpoint")
        for key in ("cursor", "files"):
            if not isinstance(manifest.get(key), dict):
                raise CheckpointError(
                    f"Checkpoint manifest {self._where(name)}/{MANIFEST} in store "
                    f"{self.store.url!r} is corrupt: expected a {key!r} object."
                )
        return manifest

    def read_cursor(self, name: str | None = None) -> Cursor:
        """Return the cursor recorded in checkpoint ``name`` (default: the latest)."""
        name = self._resolve(name)
        try:
            return Cursor.from_json(self.read_manifest(name)["cursor"])
        except (KeyError, TypeError) as error:
            raise CheckpointError(
                f"Checkpoint {self._where(name)} in store {self.store.url!r} has a corrupt "
                f"cursor: {error}"
            ) from None

    def read_config(self, name: str | None = None) -> ModelConfig:
        """Return the model configuration recorded in checkpoint ``name`` (default: latest)."""
        name = self._resolve(name)
        return manifest_config(self.read_manifest(name), f"{self._where(name)}/{MANIFEST}")

    def restore(self, engine: Checkpointed, name: str | None = None) -> Cursor:
        """Restore weights, optimizer slots and lane state into ``engine``; return the cursor.

        Every data file is checked against its recorded sha256 before anything is restored.

        Raises:
            CheckpointError: If the checkpoint is missing, corrupt or unreadable.
            ConfigError: If it was written by a model of another configuration (the message
                names both hashes) or for other lanes/segment length, or its model factory
                now builds another architecture.
        """
        name = self._resolve(name)
        where = f"{self._where(name)}"
        manifest = self.read_manifest(name)
        saved = manifest_config(manifest, f"{where}/{MANIFEST}")
        check_same_config(engine.config, saved, f"checkpoint {where!r}")
        record = manifest.get("model_factory")
        if record is not None:
            model = engine.checkpoint_objects()["model"]
            check_factory_record(record, what=f"checkpoint {where!r}", model=model)
        cursor = self.read_cursor(name)
        _check_cursor_fits(cursor, engine)
        with tempfile.TemporaryDirectory(prefix="segflow-ckpt-") as tmp:
            download_files(self.store, where, manifest["files"], Path(tmp))
            try:
                status = tf.train.Checkpoint(**engine.checkpoint_objects()).read(
                    str(Path(tmp) / _CKPT_PREFIX)
                )
                status.assert_consumed()
            except (tf.errors.OpError, AssertionError, ValueError) as error:
                raise CheckpointError(
                    f"Checkpoint {where!r} in store {self.store.url!r} could not be restored "
                    f"into the engine: {error}"
                ) from None
        return cursor

    def _resolve(self, name: str | None) -> str:
        if name is None:
            name = self.latest()
            if name is None:
                raise CheckpointError(
                    f"No checkpoint under {self.prefix!r} in store {self.store.url!r}."
                )
        elif not _NAME.match(name):
            raise ConfigError(f"Invalid checkpoint name {name!r}: expected 'ckpt-<number>'.")
        return name


# -- manifests (shared with the exports of segflow.registry) --------------------------------


def _factory_record(engine: Checkpointed, config: ModelConfig) -> dict[str, Any]:
    """The factory, spec (of the stateless call) and architecture of the engine's model."""
    assert config.model_factory is not None
    seed = getattr(engine, "seed", 0)
    spec = ModelSpec.from_config(config, batch_size=None, stateful=False, seed=seed)
    return factory_record(config.model_factory, spec, engine.checkpoint_objects()["model"])


def manifest_identity(config: ModelConfig) -> dict[str, Any]:
    """The manifest fields every checkpoint and export carries.

    ``format``, the ``config`` and its ``config_hash``, the ``created`` time and the
    ``versions`` of segflow, TensorFlow, Keras and NumPy.
    """
    return {
        "format": FORMAT,
        "config": config.model_dump(mode="json"),
        "config_hash": config.config_hash(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "segflow": _segflow_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }


def _segflow_version() -> str:
    try:
        return importlib.metadata.version("segflow")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def dump_manifest(manifest: dict[str, Any]) -> bytes:
    """The bytes a manifest is stored as (indented JSON, UTF-8).

    >>> dump_manifest({"format": 1})
    b'{\\n "format": 1\\n}'
    """
    return json.dumps(manifest, indent=1).encode("utf-8")


def file_record(data: bytes) -> dict[str, Any]:
    """What a manifest records of a file: its sha256 and size.

    >>> file_record(b"abc")["bytes"]
    3
    """
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _upload_tf_checkpoint(store: Store, where: str, engine: Checkpointed) -> dict[str, Any]:
    """Write the engine's tf checkpoint locally, upload each file; return their records."""
    files: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="segflow-ckpt-") as tmp:
        tf.train.Checkpoint(**engine.checkpoint_objects()).write(str(Path(tmp) / _CKPT_PREFIX))
        for path in sorted(Path(tmp).iterdir()):
            data = path.read_bytes()
            files[path.name] = file_record(data)
            store.write_bytes(f"{where}/{path.name}", data)
    return files


def download_files(store: Store, where: str, files: dict[str, Any], target: Path) -> None:
    """Download ``files`` (name -> record) from ``where`` to ``target``, checking sha256.

    Raises:
        CheckpointError: If a file entry is malformed, a file is missing, or its sha256
            differs from the recorded one.
    """
    for name, record in files.items():
        key = f"{where}/{name}"
        if "/" in name or name in ("", ".", "..") or not isinstance(record, dict):
            raise CheckpointError(
                f"Manifest of {where!r} in store {store.url!r} is corrupt: bad file entry {name!r}."
            )
        try:
            data = store.read_bytes(key)
        except KeyNotFoundError:
            raise CheckpointError(
                f"{key!r} in store {store.url!r} is missing; the checkpoint is corrupt."
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != record.get("sha256"):
            raise CheckpointError(
                f"{key!r} in store {store.url!r} is corrupt: sha256 {digest}, expected "
                f"{record.get('sha256')} (recorded in its manifest)."
            )
        (target / name).write_bytes(data)


def read_manifest_file(store: Store, key: str, what: str) -> dict[str, Any]:
    """Read and check the manifest at ``key``; ``what`` names it in the errors.

    Raises:
        CheckpointError: If it is missing, not JSON, or not of format :data:`FORMAT`.
    """
    try:
        raw = store.read_bytes(key)
    except KeyNotFoundError:
        raise CheckpointError(f"No {what} in store {store.url!r}: {key!r} is missing.") from None
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(
            f"Manifest {key!r} in store {store.url!r} is corrupt (not JSON: {error})."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(
            f"Manifest {key!r} in store {store.url!r} is corrupt or of an unknown format: "
            f"expected format {FORMAT}, got {got!r}."
        )
    return manifest


def manifest_config(manifest: dict[str, Any], key: str) -> ModelConfig:
    """The model configuration a manifest (read from ``key``) records.

    Raises:
        CheckpointError: If it is missing, invalid, or does not match its recorded hash.
    """
    try:
        config = ModelConfig.model_validate(manifest["config"])
    except (KeyError, ValidationError) as error:
        raise CheckpointError(f"Manifest {key!r} has no valid model config: {error}") from None
    if config.config_hash() != manifest.get("config_hash"):
        raise CheckpointError(
            f"Manifest {key!r} is corrupt: its config hashes to {config.config_hash()}, "
            f"but it records {manifest.get('config_hash')}."
        )
    return config


def check_same_config(got: ModelConfig, expected: ModelConfig, where: str) -> None:
    """Refuse ``got`` unless it hashes like ``expected`` (the configuration of ``where``).

    Raises:
        ConfigError: Naming both hashes and both configurations.
    """
    if got.config_hash() != expected.config_hash():
        raise ConfigError(
            f"Model config mismatch: config hash {got.config_hash()} does not match "
            f"{expected.config_hash()} of {where}; expected the same model configuration "
            f"(got {got.model_dump(mode='json')}, {where} has "
            f"{expected.model_dump(mode='json')})."
        )


def _check_cursor_fits(cursor: Cursor, engine: Checkpointed) -> None:
    if (cursor.lanes, cursor.segment_length) != (engine.lanes, engine.segment_length):
        raise ConfigError(
            f"Cursor is for lanes={cursor.lanes}, segment_length={cursor.segment_length}; the "
            f"engine has lanes={engine.lanes}, segment_length={engine.segment_length}. Expected "
            "the same stream settings to carry on a run."
        )
