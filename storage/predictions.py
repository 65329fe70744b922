"""The predictions layout: a model's outputs per sequence, stored next to the sequences.

Layout::

    <root>/predictions/<model_tag>/.lock            JSON, present while a run writes this tag
    <root>/predictions/<model_tag>/<id>/zarr.json   group; attrs.segflow = PredictionMeta fields
    <root>/predictions/<model_tag>/<id>/outputs     (T, outputs) float32, chunks (segment_length,
                                                    outputs): whole segments of the sequence,
                                                    at least 256 KiB (see segflow's
                                                    output_chunk); (1, outputs) many_to_one
    <root>/predictions/<model_tag>/<id>/target_times
                                                    (T,) float64, where the sequence has
                                                    timestamps: the time of the frame row t
                                                    forecasts (frame t + horizon; past the
                                                    end, extrapolated by the median step)
    <root>/predictions/<model_tag>/<id>/state/<layer>.h, <layer>.c
                                                    (units,) float32: the LSTM state after the
                                                    last predicted frame, for continuation

``attrs.segflow.length`` is the number of frames whose predictions are durable: rows past it
may hold anything. ``attrs.segflow.complete`` is set, by the same metadata write that records
the final ``length``, only once every row is written and the ``state/`` arrays are stored, so
a complete prediction always has the state that continues it.

Locking: one run at a time writes a tag. :meth:`PredictionRepository.lock` creates
``.lock`` with :meth:`Store.create_exclusive` (atomic on a local disk and on S3 conditional
writes alike) and deletes it on exit, even on an exception. A killed run leaves its lock
behind; the next run breaks it only when that is known to be safe:

- the lock was taken on *this* host and its pid is no longer running: the holder is dead,
  so the lock is broken automatically;
- otherwise (another host, whose processes cannot be checked, or a live pid) the run fails
  with :class:`LockedError` naming the holder, and an operator who knows the holder is gone
  passes ``break_lock=True`` (the CLI's ``--break-lock``).

There is no time-based expiry: a long prediction run is indistinguishable from a dead one by
age alone, and two writers on one tag would interleave rows.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import zarr
from zarr.core.metadata.v3 import ArrayV3Metadata

from storage import codecs as _codecs  # noqa: F401  (threaded crc32c for every array)
from storage.base import Store
from storage.errors import ConfigError, KeyNotFoundError, LockedError, StoreError
from storage.layout import (
    array_at,
    array_document,
    built_in_memory,
    group_document,
    metadata_from,
    read_group,
)
from storage.sequences import array_member, compressors_for
from storage.validation import validate_id

__all__ = [
    "PREDICTIONS",
    "PredictionMeta",
    "PredictionRepository",
    "prediction_path",
]

PREDICTIONS = "predictions"
OUTPUTS = "outputs"
STATE = "state"
TARGET_TIMES = "target_times"
LOCK = ".lock"
Head = Literal["many_to_many", "many_to_one"]


@dataclass(frozen=True)
class PredictionMeta:
    """What segflow records about one sequence's predictions in ``attrs.segflow``.

    Attributes:
        checkpoint: Name of the checkpoint (or export) the model came from.
        config_hash: :meth:`ModelConfig.config_hash` of the model.
        weights_digest: Digest of the model's weights: a retrained model under the same
            checkpoint name still differs here.
        flow_run_id: Id of the run that last wrote these predictions.
        created: ISO 8601 UTC time the predictions were started (or last continued).
        source_fingerprint: The sequence's ``fingerprint`` when predicted.
        sources: The sequence's ``sources`` records covered by these predictions; a grown
            sequence whose records start with these is the same recording, continued.
        length: Frames whose predictions are durable.
        complete: Whether every frame of ``[0, length)`` is predicted and the state stored.
        segment_length: Time chunk of ``outputs`` (a multiple of the sequence's segment
            length for predictions written since outputs chunks hold >= 256 KiB).
        head: ``many_to_many`` (one row per frame) or ``many_to_one`` (one row).
        outputs: Size of one prediction row.
        inputs: What the model saw at row t: ``features``, ``labels`` or
            ``features_and_labels`` (of rows up to t).
        horizon: Row t holds the forecast for frame ``t + horizon`` (0: for frame t). The
            last ``horizon`` rows of a sequence forecast frames past its end.
        time_steps: None for a stateful model streamed over the whole sequence; N for a
            windowed one, whose first ``N - 1`` rows are NaN (no full window ends there).
        class_names: The model's classes by index, when it learned text labels.
    """

    checkpoint: str = ""
    config_hash: str = ""
    weights_digest: str = ""
    flow_run_id: str | None = None
    created: str = ""
    source_fingerprint: str = ""
    sources: tuple[dict[str, Any], ...] = ()
    length: int = 0
    complete: bool = False
    segment_length: int = 1
    head: Head = "many_to_many"
    outputs: int = 1
    inputs: str = "features"
    horizon: int = 0
    time_steps: int | None = None
    class_names: tuple[str, ...] = ()

    def target_frames(self, rows: int | None = None) -> np.ndarray:
        """The frame each prediction row is for: ``t + horizon`` for row ``t``.

        Args:
            rows: Rows to describe (default: the durable ``length``).

        >>> PredictionMeta(length=4, horizon=2).target_frames().tolist()
        [2, 3, 4, 5]
        """
        count = self.length if rows is None else rows
        return np.arange(count, dtype=np.int64) + self.horizon

    def to_json(self) -> dict[str, Any]:
        """Return the attrs dict (JSON-serialisable)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["sources"] = [dict(s) for s in self.sources]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PredictionMeta:
        """Build from an attrs dict, ignoring unknown keys (newer writers may add some)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["sources"] = tuple(known.get("sources", ()))
        known["class_names"] = tuple(known.get("class_names", ()))
        return cls(**known)

    def replace(self, **changes: Any) -> PredictionMeta:
        """Return a copy with ``changes`` applied."""
        return PredictionMeta.from_json({**self.to_json(), **changes})


def prediction_path(model_tag: str, sequence_id: str | None = None) -> str:
    """Return ``predictions/<model_tag>`` or ``predictions/<model_tag>/<id>`` (both validated).

    >>> prediction_path("lstm-v1", "cam-01")
    'predictions/lstm-v1/cam-01'
    """
    tag = f"{PREDICTIONS}/{validate_id(model_tag, what='model tag')}"
    return tag if sequence_id is None else f"{tag}/{validate_id(sequence_id)}"


def now_iso() -> str:
    """Return the current UTC time as ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class PredictionRepository:
    """Reads and writes predictions in a :class:`~storage.base.Store` following the layout.

    Args:
        store: The store holding the predictions (usually the one holding the sequences).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._zarr = store.zarr_store()
        # Paths known to exist (created or checked by this repository): no request to check.
        self._known: set[str] = set()
        # Predictions this repository created and has not finished: nothing under their
        # state/ or target_times/ to delete first (listing a prefix is a request).
        self._fresh: set[str] = set()

    # -- reading ---------------------------------------------------------------------------

    def tags(self) -> list[str]:
        """Return the model tags that have predictions, sorted."""
        keys = self.store.list(PREDICTIONS)
        return sorted({k.split("/")[1] for k in keys if k.count("/") == 2 and _is_group(k)})

    def ids(self, model_tag: str) -> list[str]:
        """Return the sequence ids with predictions (complete or not) under ``model_tag``."""
        keys = self.store.list(prediction_path(model_tag))
        return sorted({k.split("/")[2] for k in keys if k.count("/") == 3 and _is_group(k)})

    def exists(self, model_tag: str, sequence_id: str) -> bool:
        """Return whether predictions exist for a sequence."""
        return self.store.exists(f"{prediction_path(model_tag, sequence_id)}/zarr.json")

    def meta(self, model_tag: str, sequence_id: str) -> PredictionMeta:
        """Return the recorded :class:`PredictionMeta`.

        Raises:
            KeyNotFoundError: If there are no predictions for the sequence.
        """
        raw = self.store.read_bytes(f"{prediction_path(model_tag, sequence_id)}/zarr.json")
        try:
            attrs = json.loads(raw).get("attributes", {})
            return PredictionMeta.from_json(attrs.get("segflow", {}))
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"Predictions {prediction_path(model_tag, sequence_id)!r} in store "
                f"{self.store.url!r} have unreadable metadata: {exc}"
            ) from exc

    def find_meta(self, model_tag: str, sequence_id: str) -> PredictionMeta | None:
        """Return the recorded meta, or None if there are no predictions for the sequence."""
        try:
            return self.meta(model_tag, sequence_id)
        except KeyNotFoundError:
            return None

    def outputs(self, model_tag: str, sequence_id: str) -> zarr.Array:
        """Open the ``outputs`` array (rows past ``meta.length`` are not valid yet)."""
        return array_member(self._group(model_tag, sequence_id), OUTPUTS)

    def read(self, model_tag: str, sequence_id: str) -> np.ndarray:
        """Return the durable predictions: ``outputs[:length]`` (the one row for many_to_one)."""
        meta = self.meta(model_tag, sequence_id)
        rows = 1 if meta.head == "many_to_one" else meta.length
        return np.asarray(self.outputs(model_tag, sequence_id)[:rows])

    def target_times(self, model_tag: str, sequence_id: str) -> np.ndarray | None:
        """Return the time each row forecasts ((T,) seconds from the sequence's start), or None
        when the sequence has no timestamps."""
        group = self._group(model_tag, sequence_id)
        if TARGET_TIMES not in group:
            return None
        return np.asarray(array_member(group, TARGET_TIMES)[:])

    def write_target_times(self, model_tag: str, sequence_id: str, times: np.ndarray) -> None:
        """Store the time each row forecasts (see the layout), replacing any stored."""
        times = np.asarray(times, dtype=np.float64)
        path = prediction_path(model_tag, sequence_id)
        if path not in self._known:
            self._group(model_tag, sequence_id)  # raises if missing
        if path not in self._fresh:
            self.store.delete_prefix(f"{path}/{TARGET_TIMES}")
        objects = built_in_memory(lambda group: _target_times_array(group, times))
        self.store.write_many({f"{path}/{key}": data for key, data in objects.items()})

    def read_state(self, model_tag: str, sequence_id: str) -> dict[str, np.ndarray]:
        """Return the stored final state: ``{"lstm_0/h": (units,), ...}`` (empty if none)."""
        prefix = f"{prediction_path(model_tag, sequence_id)}/{STATE}"
        names = sorted(
            {k[len(prefix) + 1 :].split("/")[0] for k in self.store.list(prefix)} - {"zarr.json"}
        )
        group = self._group(model_tag, sequence_id)
        return {_state_key(n): np.asarray(array_member(group, f"{STATE}/{n}")[:]) for n in names}

    # -- writing ---------------------------------------------------------------------------

    def create(
        self, model_tag: str, sequence_id: str, *, rows: int, meta: PredictionMeta
    ) -> zarr.Array:
        """Create (or overwrite) a sequence's predictions, marked incomplete, and return outputs.

        Args:
            model_tag: The model tag.
            sequence_id: The sequence id.
            rows: Frames of the sequence (the ``outputs`` length for many_to_many; ignored
                for many_to_one, whose ``outputs`` has one row).
            meta: Metadata to record; ``length`` and ``complete`` are reset.
        """
        path = prediction_path(model_tag, sequence_id)
        if meta.segment_length <= 0 or meta.outputs <= 0:
            raise ConfigError(
                f"Received segment_length={meta.segment_length}, outputs={meta.outputs} for "
                f"predictions {path!r}; expected positive integers."
            )
        self._ensure_parents(model_tag)
        self.store.delete_prefix(path)
        many = meta.head == "many_to_many"
        template = _outputs_template(meta.segment_length if many else 1, meta.outputs, many)
        metadata = template.update_shape((rows if many else 1, meta.outputs))
        # The array first, the group last: only the group's metadata makes predictions exist.
        self.store.write_bytes(f"{path}/{OUTPUTS}/zarr.json", array_document(metadata))
        attributes = {"segflow": meta.replace(length=0, complete=False).to_json()}
        self.store.write_bytes(f"{path}/zarr.json", group_document(attributes))
        self._known.add(path)
        self._fresh.add(path)
        return array_at(self._zarr, f"{path}/{OUTPUTS}", metadata)

    def resize(self, model_tag: str, sequence_id: str, rows: int) -> zarr.Array:
        """Grow (or shrink) a many_to_many ``outputs`` to ``rows`` rows, keeping earlier rows."""
        array = self.outputs(model_tag, sequence_id)
        if self.meta(model_tag, sequence_id).head == "many_to_many" and array.shape[0] != rows:
            array.resize((rows, array.shape[1]))
        return array

    def write_meta(self, model_tag: str, sequence_id: str, meta: PredictionMeta) -> None:
        """Replace the recorded meta (one atomic write of the group metadata).

        Raises:
            KeyNotFoundError: If there are no predictions for the sequence.
        """
        path = prediction_path(model_tag, sequence_id)
        if path not in self._known:
            self._group(model_tag, sequence_id)  # raises if missing
            self._known.add(path)
        self.store.write_bytes(f"{path}/zarr.json", group_document({"segflow": meta.to_json()}))

    def finish(
        self,
        model_tag: str,
        sequence_id: str,
        meta: PredictionMeta,
        state: dict[str, np.ndarray],
    ) -> None:
        """Store the final state, then mark the predictions complete with ``meta``.

        The state arrays go first and the metadata last, so ``complete`` is never seen
        without the state that continues it.

        Args:
            model_tag: The model tag.
            sequence_id: The sequence id.
            meta: The final meta (``complete`` is set here).
            state: ``{"lstm_0/h": (units,), ...}``: the sequence's lane rows after its last
                frame, each of its variable's row shape.
        """
        path = prediction_path(model_tag, sequence_id)
        if path not in self._fresh:
            self.store.delete_prefix(f"{path}/{STATE}")
        objects = built_in_memory(lambda group: _state_arrays(group, state))
        self.store.write_many({f"{path}/{key}": data for key, data in objects.items()})
        self.write_meta(model_tag, sequence_id, meta.replace(complete=True))
        self._fresh.discard(path)

    def delete(self, model_tag: str, sequence_id: str) -> None:
        """Delete a sequence's predictions."""
        self._known.discard(prediction_path(model_tag, sequence_id))
        self._fresh.discard(prediction_path(model_tag, sequence_id))
        self.store.delete_prefix(prediction_path(model_tag, sequence_id))

    # -- locking ---------------------------------------------------------------------------

    def read_lock(self, model_tag: str) -> dict[str, Any] | None:
        """Return the lock record of ``model_tag`` (owner, pid, host, time, token), or None."""
        try:
            raw = self.store.read_bytes(f"{prediction_path(model_tag)}/{LOCK}")
        except KeyNotFoundError:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return record
        return {"unreadable": raw[:200].decode(errors="replace")}

    @contextmanager
    def lock(
        self, model_tag: str, owner: str, *, break_lock: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Hold the lock of ``model_tag`` for the duration of the ``with`` block.

        Args:
            model_tag: The model tag whose predictions are written.
            owner: Who holds it (a run id), shown to anyone refused.
            break_lock: Take the lock even if another run holds it (only when that run is
                known to be gone; see the module docstring).

        Yields:
            The lock record written.

        Raises:
            LockedError: If another run holds the lock and it cannot be broken safely.
        """
        key = f"{prediction_path(model_tag)}/{LOCK}"
        token = uuid.uuid4().hex
        record: dict[str, Any] = {
            "owner": owner,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time": now_iso(),
            "token": token,
        }
        self._acquire(model_tag, key, record, break_lock)
        try:
            yield record
        finally:
            self._release(key, token)

    def _acquire(self, model_tag: str, key: str, record: dict[str, Any], break_lock: bool) -> None:
        data = json.dumps(record).encode()
        if self.store.create_exclusive(key, data):
            return
        holder = self.read_lock(model_tag)
        if holder is not None and (break_lock or _holder_is_dead(holder)):
            # Delete only the lock judged stale: if it changed meanwhile, someone else broke
            # it first and now holds it.
            if self.read_lock(model_tag) == holder:
                self.store.delete(key)
            if self.store.create_exclusive(key, data):
                return
            holder = self.read_lock(model_tag)
        raise LockedError(
            f"Predictions for model tag {model_tag!r} in store {self.store.url!r} are locked by "
            f"{_describe(holder)}: another predict run is writing them. If that run is dead, "
            f"re-run with break_lock=True (CLI --break-lock) or delete {key!r}."
        )

    def _release(self, key: str, token: str) -> None:
        try:
            current = json.loads(self.store.read_bytes(key))
        except (KeyNotFoundError, ValueError):
            return
        if isinstance(current, dict) and current.get("token") == token:
            self.store.delete(key)

    # -- helpers ---------------------------------------------------------------------------

    def _group(self, model_tag: str, sequence_id: str) -> zarr.Group:
        group = read_group(self.store, self._zarr, prediction_path(model_tag, sequence_id))
        if group is None:
            raise KeyNotFoundError(
                f"No predictions for sequence {sequence_id!r} under model tag {model_tag!r} "
                f"in store {self.store.url!r}."
            )
        return group

    def _ensure_parents(self, model_tag: str) -> None:
        # Each created only if absent, atomically (root first, as zarr does): shards of one
        # tag start at once on different workers, and zarr's open_group(mode="a") fails in
        # the one that loses the race.
        for path in ("", PREDICTIONS, prediction_path(model_tag)):
            if path not in self._known:
                key = f"{path}/zarr.json" if path else "zarr.json"
                self.store.create_exclusive(key, group_document({}))
            self._known.add(path)


@functools.lru_cache(maxsize=16)
def _outputs_template(chunk: int, outputs: int, many: bool) -> ArrayV3Metadata:
    """The ``outputs`` array's metadata at zero rows (reshaped per sequence), built by zarr."""
    objects = built_in_memory(
        lambda group: group.create_array(
            OUTPUTS,
            shape=(0, outputs),
            chunks=(chunk, outputs),
            dtype="float32",
            compressors=compressors_for("lz4"),
            dimension_names=("time" if many else "sequence", "output"),
            fill_value=float("nan"),
        )
    )
    return metadata_from(objects[f"{OUTPUTS}/zarr.json"])


def _state_arrays(group: zarr.Group, state: dict[str, np.ndarray]) -> None:
    for key, value in sorted(state.items()):
        row = np.asarray(value, dtype=np.float32)  # (units,), or (H, W, filters)
        group.create_array(
            f"{STATE}/{_state_name(key)}",
            dimension_names=tuple(f"{_state_name(key)}_{i}" for i in range(row.ndim)),
            shape=row.shape,
            chunks=row.shape,
            dtype="float32",
            compressors=compressors_for("none"),
        )[:] = row


def _target_times_array(group: zarr.Group, times: np.ndarray) -> None:
    group.create_array(
        TARGET_TIMES,
        dimension_names=("time",),
        shape=times.shape,
        chunks=(max(len(times), 1),),
        dtype="float64",
        compressors=compressors_for("none"),
    )[:] = times


def _is_group(key: str) -> bool:
    return key.endswith("/zarr.json")


def _state_name(key: str) -> str:
    """``"lstm_0/h"`` (a lane-state key) → ``"lstm_0.h"`` (an array name)."""
    return key.replace("/", ".")


def _state_key(name: str) -> str:
    """``"block.gru.h"`` → ``"block/gru/h"``: layer names and paths cannot hold a dot."""
    return name.replace(".", "/")


def _holder_is_dead(holder: dict[str, Any]) -> bool:
    """Whether the lock's holder is a process of this host that is no longer running."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False  # this process holds it (a nested run): not stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by another user
    return False


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "a run that released it just now (retry)"
    fields = ("owner", "pid", "host", "time")
    if not any(f in holder for f in fields):
        return f"an unreadable lock {holder!r}"
    return ", ".join(f"{f}={holder.get(f)!r}" for f in fields)
