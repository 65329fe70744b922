"""Test helper: write small sequences into a store the way an ingest would."""

from __future__ import annotations

from typing import Any

import numpy as np

from storage.sequences import Compression, LabelKind, SequenceMeta, SequenceRepository


def write_sequence(
    repo: SequenceRepository,
    sequence_id: str,
    frames: np.ndarray,
    *,
    chunk_length: int,
    labels: np.ndarray | None = None,
    label_kind: LabelKind | None = None,
    compression: Compression = "auto",
    complete: bool = True,
) -> None:
    """Write ``frames`` (T, ...) and optional ``labels`` as sequence ``sequence_id``.

    Args:
        repo: Where to write.
        sequence_id: The id.
        frames: The frames, time first; their dtype is the stored dtype.
        chunk_length: Frames per stored chunk (the meta's ``segment_length``).
        labels: (T, ...) per-frame labels, or (1, ...) with ``label_kind="per_sequence"``.
        label_kind: Recorded label kind; defaults to ``"per_frame"`` when labels are given.
        compression: Chunk compression.
        complete: Whether to mark the sequence complete (False leaves it as a crashed ingest).
    """
    if labels is not None and label_kind is None:
        label_kind = "per_frame"
    meta = SequenceMeta(segment_length=chunk_length, label_kind=label_kind)
    group = repo.create(
        sequence_id,
        frame_shape=tuple(frames.shape[1:]),
        dtype=frames.dtype,
        meta=meta,
        compression=compression,
        label_shape=None if labels is None else tuple(labels.shape[1:]),
        label_dtype=None if labels is None else labels.dtype,
    )
    _write_rows(group["frames"], frames)
    if labels is not None:
        _write_rows(group["labels"], labels)
    length = int(frames.shape[0])
    done = meta.replace(length=length, complete=complete, frames_written=length)
    repo.write_meta(sequence_id, done)


def store_all(
    repo: SequenceRepository,
    frames: list[np.ndarray],
    chunk_length: int,
    labels: list[np.ndarray] | None = None,
    *,
    label_kind: LabelKind | None = None,
    compression: Compression = "auto",
) -> list[str]:
    """Write each of ``frames`` (and ``labels``) as sequences ``seq-0``, ``seq-1``, ...; return ids.

    The keyword arguments are those of :func:`write_sequence`.
    """
    ids = [f"seq-{i}" for i in range(len(frames))]
    for i, sid in enumerate(ids):
        rows = None if labels is None else labels[i]
        write_sequence(
            repo,
            sid,
            frames[i],
            chunk_length=chunk_length,
            labels=rows,
            label_kind=label_kind,
            compression=compression,
        )
    return ids


def _write_rows(array: Any, rows: np.ndarray) -> None:
    if array.shape[0] != rows.shape[0]:
        array.resize(rows.shape)
    if rows.shape[0]:
        array[:] = rows
