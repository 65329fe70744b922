"""The sequence layout: how sequences are laid out as Zarr v3 arrays in a store.

Layout (documented for users in ``docs/layout.md``)::

    <root>/zarr.json                         group; attrs.segflow.layout_version
    <root>/sequences/<id>/zarr.json          group; attrs.segflow = SequenceMeta fields
    <root>/sequences/<id>/frames             (T, ...frame dims), chunks (segment_length, ...)
    <root>/sequences/<id>/labels             optional: (T, ...) per frame or (1, ...) per sequence
    <root>/sequences/<id>/timestamps         optional: (T,) float64 seconds from the start
    <root>/staging/<id>/...                  a replacement being written; swapped in when whole

``attrs.segflow.length`` is the number of committed frames: readers use it, not the array
shape, because an append resizes the arrays before their new frames are written.
``attrs.segflow.complete`` is set only after every chunk of ``[0, length)`` is written.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import zarr
from zarr.core.array import AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.storage import StorePath

from storage.base import Store
from storage.chunks import DirectChunks
from storage.codecs import Compression, compressors_for, resolve_compression
from storage.errors import (
    ConfigError,
    IncompleteSequenceError,
    SequenceNotFoundError,
    StoreError,
)
from storage.layout import read_group, write_group, write_group_attribute
from storage.validation import validate_id

LAYOUT_VERSION = 1
SEQUENCES = "sequences"
STAGING = "staging"
LabelKind = Literal["per_frame", "per_sequence"]

_FRAME_DIMENSIONS = {
    0: (),
    1: ("feature",),
    2: ("height", "width"),
    3: ("height", "width", "channel"),
}


def frame_dimension_names(frame_shape: tuple[int, ...]) -> tuple[str, ...]:
    """Return the Zarr ``dimension_names`` for frames of ``frame_shape``, time first.

    >>> frame_dimension_names((64, 64, 3))
    ('time', 'height', 'width', 'channel')
    >>> frame_dimension_names((12,))
    ('time', 'feature')
    """
    names = _FRAME_DIMENSIONS.get(len(frame_shape))
    if names is None:
        names = tuple(f"dim_{i}" for i in range(len(frame_shape)))
    return ("time", *names)


def array_member(group: zarr.Group, name: str) -> zarr.Array:
    """Return the array ``name`` of ``group`` (zarr's ``group[name]``, narrowed to an array).

    Raises:
        KeyError: If ``group`` has no member ``name``.
        StoreError: If the member is a group: the store's layout is damaged.

    >>> group = zarr.open_group(zarr.storage.MemoryStore())
    >>> _ = group.create_array("frames", shape=(4,), dtype="uint8")
    >>> _ = group.create_group("nested")
    >>> array_member(group, "frames").shape
    (4,)
    >>> array_member(group, "nested")
    Traceback (most recent call last):
      ...
    segflow.errors.StoreError: Expected an array at 'nested' in the store, found a group: ...
    """
    member = group[name]
    if not isinstance(member, zarr.Array):
        where = f"{group.path}/{name}" if group.path else name
        raise StoreError(
            f"Expected an array at {where!r} in the store, found a group: the store's layout "
            f"is damaged."
        )
    return member


@dataclass(frozen=True)
class SequenceMeta:
    """What segflow records about a sequence in ``attrs.segflow`` of its group."""

    length: int = 0
    complete: bool = False
    segment_length: int = 1
    source_uri: str = ""
    fingerprint: str = ""
    frame_rate: float | None = None
    sample_interval: float | None = None
    start_time: str | None = None
    partition: str | None = None
    label_kind: LabelKind | None = None
    class_names: tuple[str, ...] = ()  # of text labels, by class index
    frames_written: int = 0
    sources: tuple[dict[str, Any], ...] = ()
    pending_append: dict[str, Any] | None = None
    layout_version: int = LAYOUT_VERSION

    def to_json(self) -> dict[str, Any]:
        """Return the attrs dict (JSON-serialisable)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["sources"] = [dict(s) for s in self.sources]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SequenceMeta:
        """Build from an attrs dict, ignoring unknown keys (newer writers may add some)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["sources"] = tuple(known.get("sources", ()))
        known["class_names"] = tuple(known.get("class_names", ()))
        return cls(**known)

    def replace(self, **changes: Any) -> SequenceMeta:
        """Return a copy with ``changes`` applied."""
        return SequenceMeta.from_json({**self.to_json(), **changes})


@dataclass(frozen=True)
class SequenceInfo:
    """A summary of one stored sequence, as ``segflow inspect`` reports it."""

    id: str
    length: int
    frame_shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    dimension_names: tuple[str, ...]
    complete: bool
    has_labels: bool
    meta: SequenceMeta = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "id": self.id,
            "length": self.length,
            "frame_shape": list(self.frame_shape),
            "dtype": self.dtype,
            "chunks": list(self.chunks),
            "dimension_names": list(self.dimension_names),
            "complete": self.complete,
            "has_labels": self.has_labels,
            "label_kind": self.meta.label_kind,
            "segment_length": self.meta.segment_length,
            "source_uri": self.meta.source_uri,
            "fingerprint": self.meta.fingerprint,
            "frame_rate": self.meta.frame_rate,
            "sample_interval": self.meta.sample_interval,
            "start_time": self.meta.start_time,
            "partition": self.meta.partition,
        }


def sequence_path(sequence_id: str, *, staging: bool = False) -> str:
    """Return the group path of a sequence (``sequences/<id>`` or ``staging/<id>``)."""
    return f"{STAGING if staging else SEQUENCES}/{validate_id(sequence_id)}"


class SequenceRepository:
    """Reads and writes sequences in a :class:`~storage.base.Store` following the layout.

    Args:
        store: The store holding the sequences.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._zarr = store.zarr_store()
        self._root_ready = False  # ensure_root has run: the root groups are never deleted

    # -- reading ---------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Return the ids of all sequences (complete or not), sorted."""
        keys = self.store.list(SEQUENCES)
        ids = {k.split("/")[1] for k in keys if k.count("/") == 2 and k.endswith("/zarr.json")}
        return sorted(ids)

    def exists(self, sequence_id: str, *, staging: bool = False) -> bool:
        """Return whether a sequence group exists."""
        return self.store.exists(f"{sequence_path(sequence_id, staging=staging)}/zarr.json")

    def group(self, sequence_id: str, *, staging: bool = False) -> zarr.Group:
        """Open a sequence's group.

        Raises:
            SequenceNotFoundError: If the sequence does not exist.
        """
        group = read_group(self.store, self._zarr, sequence_path(sequence_id, staging=staging))
        if group is None:
            raise SequenceNotFoundError(
                f"Sequence {sequence_id!r} not found in store {self.store.url!r}."
            )
        return group

    def meta(self, sequence_id: str, *, staging: bool = False) -> SequenceMeta:
        """Return the recorded :class:`SequenceMeta` of a sequence."""
        raw = self.store.read_bytes(f"{sequence_path(sequence_id, staging=staging)}/zarr.json")
        attrs = json.loads(raw).get("attributes", {})
        return SequenceMeta.from_json(attrs.get("segflow", {}))

    def info(self, sequence_id: str) -> SequenceInfo:
        """Return a :class:`SequenceInfo` for a sequence."""
        group = self.group(sequence_id)
        meta = self.meta(sequence_id)
        frames = array_member(group, "frames")
        return SequenceInfo(
            id=sequence_id,
            length=meta.length,
            frame_shape=tuple(frames.shape[1:]),
            dtype=str(frames.dtype),
            chunks=tuple(frames.chunks),
            dimension_names=_dimension_names(frames),
            complete=meta.complete,
            has_labels="labels" in group,
            meta=meta,
        )

    def list_info(self) -> list[SequenceInfo]:
        """Return a :class:`SequenceInfo` for every sequence, sorted by id."""
        return [self.info(i) for i in self.ids()]

    def frames(self, sequence_id: str, *, require_complete: bool = True) -> zarr.Array:
        """Open a sequence's frames array (read it with ``[start:stop]``, up to ``length``).

        Raises:
            IncompleteSequenceError: If ``require_complete`` and the sequence is not complete.
        """
        if require_complete:
            self.require_complete(sequence_id)
        return array_member(self.group(sequence_id), "frames")

    def labels(self, sequence_id: str) -> zarr.Array | None:
        """Open a sequence's labels array, or return None if it has none."""
        group = self.group(sequence_id)
        return array_member(group, "labels") if "labels" in group else None

    def timestamps(self, sequence_id: str) -> zarr.Array | None:
        """Open a sequence's timestamps ((T,) float64 seconds from its start), or None."""
        group = self.group(sequence_id)
        return array_member(group, "timestamps") if "timestamps" in group else None

    def require_complete(self, sequence_id: str) -> SequenceMeta:
        """Return the meta of a complete sequence, else raise :class:`IncompleteSequenceError`."""
        meta = self.meta(sequence_id)
        if not meta.complete:
            raise IncompleteSequenceError(
                f"Sequence {sequence_id!r} in store {self.store.url!r} is not marked complete "
                f"({meta.frames_written} frames written); re-run the ingest to finish it."
            )
        return meta

    # -- writing ---------------------------------------------------------------------------

    def ensure_root(self) -> None:
        """Create the root and ``sequences`` groups if missing.

        Safe when several ingests start at once on an empty store: each group's metadata is
        written with one atomic put of the same content, so whoever writes last changes nothing.
        """
        if self._root_ready:
            return
        root_meta = {"layout_version": LAYOUT_VERSION}
        for path, attributes in (("", {"segflow": root_meta}), (SEQUENCES, {})):
            key = f"{path}/zarr.json" if path else "zarr.json"
            if not self.store.exists(key):
                document = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
                self.store.write_bytes(key, json.dumps(document).encode())
        self._root_ready = True

    def create(
        self,
        sequence_id: str,
        *,
        frame_shape: tuple[int, ...],
        dtype: np.dtype[Any] | str,
        meta: SequenceMeta,
        compression: Compression = "auto",
        label_shape: tuple[int, ...] | None = None,
        label_dtype: np.dtype[Any] | str | None = None,
        with_timestamps: bool = False,
        staging: bool = False,
    ) -> zarr.Group:
        """Create (or overwrite) an empty sequence with zero frames, marked incomplete.

        Args:
            sequence_id: The id.
            frame_shape: Shape of one frame.
            dtype: Frame dtype.
            meta: Metadata to record; ``length``/``complete``/``frames_written`` are reset.
            compression: Chunk compression (a crc32c checksum is always added); ``auto``
                picks by dtype (:func:`resolve_compression`).
            label_shape: Shape of the labels array's rows if labels are stored, else None.
            label_dtype: Labels dtype.
            with_timestamps: Whether to create a ``timestamps`` array.
            staging: Write under ``staging/`` (a replacement, swapped in by :meth:`promote`).

        Returns:
            The sequence group.
        """
        template = _layout_template(
            tuple(frame_shape),
            np.dtype(dtype).str,
            _check_segment_length(meta.segment_length),
            compression,
            None if label_shape is None else tuple(label_shape),
            None if label_dtype is None else np.dtype(label_dtype).str,
            meta.label_kind != "per_sequence",
            with_timestamps,
        )
        self.ensure_root()
        path = sequence_path(sequence_id, staging=staging)
        self.store.delete_prefix(path)
        fresh = meta.replace(length=0, complete=False, frames_written=0, pending_append=None)
        # The template's documents at once: no zarr round trips per node (storage.layout).
        arrays = {name: metadata for name, (metadata, _) in template.items()}
        return write_group(self.store, self._zarr, path, {"segflow": fresh.to_json()}, arrays)

    def write_whole(
        self,
        sequence_id: str,
        arrays: Mapping[str, np.ndarray],
        *,
        meta: SequenceMeta,
        compression: Compression = "auto",
        staging: bool = False,
    ) -> None:
        """Write a whole small sequence at once, its group metadata (``meta``, as is) last.

        The bytes of :meth:`create`, writes and :meth:`write_meta`, without zarr's event loop:
        chunks are encoded in this thread (:class:`~storage.chunks.DirectChunks`), metadata
        comes from a layout template built once per process. The group's ``zarr.json`` is the
        only sign the sequence exists: a crash before it leaves nothing a reader sees.
        ``arrays``: ``frames`` (T, ...), optionally ``labels`` ((T, ...), or (1, ...) when
        ``meta.label_kind`` is ``per_sequence``) and ``timestamps`` (T,).
        """
        frames = arrays["frames"]
        labels = arrays.get("labels")
        template = _layout_template(
            tuple(frames.shape[1:]),
            np.dtype(frames.dtype).str,
            _check_segment_length(meta.segment_length),
            compression,
            None if labels is None else tuple(labels.shape[1:]),
            None if labels is None else np.dtype(labels.dtype).str,
            meta.label_kind != "per_sequence",
            "timestamps" in arrays,
        )
        self.ensure_root()
        path = sequence_path(sequence_id, staging=staging)
        self.store.delete_prefix(path)
        for name, data in arrays.items():
            metadata, document = template[name]
            self._write_all_chunks(f"{path}/{name}", metadata, data)
            # Not flushed on its own: only the group's metadata below makes it visible.
            shaped = json.dumps({**document, "shape": list(data.shape)}, indent=2).encode()
            self.store.write_chunk(f"{path}/{name}/zarr.json", [shaped])
        group = {**_GROUP_DOCUMENT, "attributes": {"segflow": meta.to_json()}}
        self.store.write_bytes(f"{path}/zarr.json", json.dumps(group, indent=2).encode())

    def _write_all_chunks(self, path: str, metadata: ArrayV3Metadata, data: np.ndarray) -> None:
        # The chunk grid does not depend on the array's length: the empty template will do.
        array = zarr.Array(AsyncArray(metadata, StorePath(self._zarr, path)))
        direct = DirectChunks.for_array(array)
        if direct is None:  # another zarr: the public path, after the array's metadata
            resized = metadata.update_shape(data.shape)
            self.store.write_bytes(f"{path}/zarr.json", _document(resized))
            zarr.Array(AsyncArray(resized, StorePath(self._zarr, path)))[:] = data
            return
        step = direct.chunk_length
        for index, begin in enumerate(range(0, len(data), step)):
            rows = data[begin : begin + step]
            if len(rows) < step:  # zarr stores an edge chunk whole, fill value beyond the end
                padded = np.zeros((step, *rows.shape[1:]), dtype=metadata.dtype.to_native_dtype())
                padded[: len(rows)] = rows
                rows = padded
            direct.write(self.store, index, rows)

    def frames_layout(self, sequence_id: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
        """Return the frames array's frame shape, dtype and time chunk (one metadata read).

        Raises:
            StoreError: If the stored metadata is not a Zarr v3 frames array.
        """
        key = f"{sequence_path(sequence_id)}/frames/zarr.json"
        try:
            document = json.loads(self.store.read_bytes(key))
            shape = tuple(int(n) for n in document["shape"])
            chunks = document["chunk_grid"]["configuration"]["chunk_shape"]
            return shape[1:], np.dtype(document["data_type"]), int(chunks[0])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"Expected Zarr v3 array metadata at {key!r} in store {self.store.url!r}, "
                f"could not read it: {exc!r}; the store's layout is damaged."
            ) from exc

    def write_meta(self, sequence_id: str, meta: SequenceMeta, *, staging: bool = False) -> None:
        """Replace a sequence's recorded meta (one atomic write of its group metadata)."""
        path = sequence_path(sequence_id, staging=staging)
        write_group_attribute(self.store, path, "segflow", meta.to_json())

    def promote(self, sequence_id: str) -> None:
        """Swap a finished staging sequence into ``sequences/<id>``, replacing the old one."""
        staged = sequence_path(sequence_id, staging=True)
        self.store.move_prefix(staged, sequence_path(sequence_id))

    def delete(self, sequence_id: str) -> None:
        """Delete a sequence and any staged replacement."""
        self.store.delete_prefix(sequence_path(sequence_id))
        self.store.delete_prefix(sequence_path(sequence_id, staging=True))


def _check_segment_length(segment_length: int) -> int:
    if not isinstance(segment_length, int) or segment_length <= 0:
        raise ConfigError(
            f"Invalid segment_length {segment_length!r}: expected a positive integer."
        )
    return segment_length


def _create_arrays(
    group: zarr.Group,
    *,
    frame_shape: tuple[int, ...],
    dtype: Any,
    segment_length: int,
    compression: Compression,
    label_shape: tuple[int, ...] | None,
    label_dtype: Any,
    per_frame_labels: bool,
    with_timestamps: bool,
) -> None:
    resolved = resolve_compression(compression, dtype)
    compressors = compressors_for(resolved, dtype)
    _time_array(group, "frames", (0, *frame_shape), dtype, segment_length, compressors)
    if label_shape is not None:
        rows = 0 if per_frame_labels else 1
        chunk = segment_length if per_frame_labels else 1
        # One row for the whole sequence is not a time axis: xarray would refuse a "time"
        # of length 1 beside the frames' (conflicting sizes).
        first = "time" if per_frame_labels else "sequence"
        codecs = compressors_for(resolved, label_dtype)
        _time_array(group, "labels", (rows, *label_shape), label_dtype, chunk, codecs, first)
    if with_timestamps:
        codecs = compressors_for(resolved, "float64")
        _time_array(group, "timestamps", (0,), "float64", segment_length, codecs)


@functools.lru_cache(maxsize=64)
def _layout_template(
    frame_shape: tuple[int, ...],
    dtype: str,
    segment_length: int,
    compression: Compression,
    label_shape: tuple[int, ...] | None,
    label_dtype: str | None,
    per_frame_labels: bool,
    with_timestamps: bool,
) -> dict[str, tuple[ArrayV3Metadata, dict[str, Any]]]:
    """The arrays' metadata (and ``zarr.json`` document) of one layout, built by zarr in memory.

    Many small sequences share a few layouts; building zarr metadata costs several event-loop
    round trips, so :meth:`SequenceRepository.write_whole` reshapes these instead.
    """
    group = zarr.create_group(zarr.storage.MemoryStore())
    _create_arrays(
        group,
        frame_shape=frame_shape,
        dtype=np.dtype(dtype),
        segment_length=segment_length,
        compression=compression,
        label_shape=label_shape,
        label_dtype=None if label_dtype is None else np.dtype(label_dtype),
        per_frame_labels=per_frame_labels,
        with_timestamps=with_timestamps,
    )
    templates = {}
    for name in ("frames", "labels", "timestamps"):
        if name in group:
            metadata = array_member(group, name).metadata
            assert isinstance(metadata, ArrayV3Metadata)  # created with zarr_format 3
            templates[name] = (metadata, json.loads(_document(metadata)))
    return templates


#: A group's ``zarr.json`` as zarr writes it, without its attributes.
_GROUP_DOCUMENT: dict[str, Any] = json.loads(
    GroupMetadata().to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()
)


def _document(metadata: ArrayV3Metadata | GroupMetadata) -> bytes:
    """The ``zarr.json`` bytes zarr itself writes for ``metadata``."""
    return metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()


def _time_array(
    group: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    time_chunk: int,
    compressors: list[Any],
    first: str = "time",
) -> zarr.Array:
    return group.create_array(
        name,
        shape=shape,
        chunks=(time_chunk, *shape[1:]),
        dtype=dtype,
        compressors=compressors,
        dimension_names=frame_dimension_names(shape[1:])
        if name == "frames"
        else (first, *(f"{name}_{i}" for i in range(len(shape) - 1))),
        fill_value=0,
        # Flat chunk keys (frames/c.3.0.0.0): "/" would nest a directory per index on a local
        # disk, and creating three directories per chunk cost ~40% of an uncompressed write.
        chunk_key_encoding={"name": "default", "separator": "."},
    )


def iter_segments(length: int, segment_length: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """Yield ``(start, stop)`` of each segment of a sequence, aligned to ``segment_length``.

    >>> list(iter_segments(10, 4))
    [(0, 4), (4, 8), (8, 10)]
    >>> list(iter_segments(10, 4, start=5))
    [(5, 8), (8, 10)]
    """
    _check_segment_length(segment_length)
    position = start
    while position < length:
        stop = min(length, (position // segment_length + 1) * segment_length)
        yield position, stop
        position = stop


def _dimension_names(array: zarr.Array) -> tuple[str, ...]:
    """The array's dimension names; segflow names every dimension of the v3 arrays it writes."""
    metadata = array.metadata
    names = metadata.dimension_names if isinstance(metadata, ArrayV3Metadata) else None
    return tuple(name or "" for name in names or ())
