"""Ingesting one source into one sequence: probe, plan, write, mark complete (Prefect-free)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from segflow.config import SourceConfig, WriteConfig
from segflow.errors import ConfigError, SegflowError, SourceError
from segflow.ids import id_from_name, validate_id
from segflow.ingest.plan import IngestPlan, plan_ingest
from segflow.ingest.writer import BlockWriter
from segflow.sources.base import FrameBlock, Source, SourceProbe
from segflow.sources.discover import open_source
from segflow.sources.labels import load_labels, sidecar_labels
from storage.sequences import (
    LabelKind,
    SequenceMeta,
    SequenceRepository,
    array_member,
    resolve_compression,
    sequence_path,
)

Status = Literal["written", "appended", "skipped", "failed"]
#: Sources up to this many bytes of frames are written whole in the calling thread
#: (:func:`_write_whole`): for them, a writer's threads and per-block metadata updates cost
#: more than the frames (measured: 25 ms and 14 store round trips per 1 kB recording).
WHOLE_BYTES = 4 * 2**20
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class IngestResult:
    """The outcome of ingesting one source."""

    source: str
    sequence_id: str
    status: Status
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Job:
    """Everything one write of one source into one sequence needs."""

    repo: SequenceRepository
    target: str
    source: Source
    probe: SourceProbe
    labels: np.ndarray | None
    plan: IngestPlan
    write_config: WriteConfig
    on_frames: ProgressCallback | None


def ingest_source(
    uri: str,
    repo: SequenceRepository,
    *,
    sequence_id: str | None = None,
    labels_path: str | None = None,
    append: bool = False,
    force: bool = False,
    source_config: SourceConfig = SourceConfig(),
    write_config: WriteConfig = WriteConfig(),
    on_frames: ProgressCallback | None = None,
    storage_options: dict[str, Any] | None = None,
) -> IngestResult:
    """Ingest the source at ``uri`` into ``repo`` as sequence ``sequence_id``.

    Idempotent (an unchanged, complete sequence is skipped), resumable (an interrupted write
    continues from its last durable block) and safe (a changed source is written to staging
    and swapped in only when whole, so bad input never damages a complete sequence).

    Args:
        uri: Path or URL of the source.
        repo: The sequence repository to write to.
        sequence_id: Target id; default derived from the source's file name.
        labels_path: Label file; default a ``<stem>.labels.npy|csv`` sidecar if present.
        append: Append the frames to the existing sequence instead of replacing it.
        force: Re-ingest even if the source is unchanged.
        source_config: Decoding options.
        write_config: Layout and write options.
        on_frames: Called with the number of frames written by each block.
        storage_options: fsspec options for a remote source.

    Returns:
        The result (``written``, ``appended`` or ``skipped``).

    Raises:
        SourceError: If the source or its labels are invalid; nothing is marked complete.
        ConfigError: If the id or options are invalid, or an append does not fit.
    """
    started = time.perf_counter()
    target = id_from_name(uri.rstrip("/")) if sequence_id is None else validate_id(sequence_id)
    # Read once: each existence check and meta read is a request on an object store.
    existing = repo.meta(target) if repo.exists(target) else None
    staged = repo.meta(target, staging=True) if repo.exists(target, staging=True) else None
    known = _known_fingerprint(existing, uri)
    source = open_source(uri, options=source_config, storage_options=storage_options, known=known)
    if not append and existing is None and staged is None:
        # Nothing to compare with: hash the source while writing it instead of reading it twice.
        source.defer_fingerprint()
    probe = source.probe()
    labels_path = labels_path or sidecar_labels(uri, storage_options=storage_options)
    labels = _external_labels(labels_path, probe, storage_options)
    plan = _plan(
        repo,
        target,
        probe,
        source.provisional_fingerprint(),
        existing,
        staged,
        write_config,
        append=append,
        force=force,
    )
    if plan.action == "skip":
        return IngestResult(uri, target, "skipped", message=plan.reason)
    frames = _execute(_Job(repo, target, source, probe, labels, plan, write_config, on_frames))
    seconds = time.perf_counter() - started
    nbytes = frames * int(np.prod(probe.frame_shape)) * probe.dtype.itemsize
    status: Status = "appended" if plan.action == "append" else "written"
    return IngestResult(uri, target, status, frames, nbytes, seconds, plan.reason)


def _known_fingerprint(existing: SequenceMeta | None, uri: str) -> dict[str, Any] | None:
    """The fingerprint record stored for ``uri`` last time (an unchanged file is not re-hashed)."""
    if existing is None:
        return None
    records = [s.get("record") for s in existing.sources if s.get("uri") == uri]
    return records[-1] if records and records[-1] else None


def _external_labels(
    path: str | None, probe: SourceProbe, storage_options: dict[str, Any] | None
) -> np.ndarray | None:
    if path is None:
        return None
    labels = load_labels(path, storage_options=storage_options)
    per_sequence = len(labels) == 1
    if probe.length is not None and not per_sequence and len(labels) != probe.length:
        raise SourceError(
            f"Label file {path!r} has {len(labels)} labels but source {probe.uri!r} has "
            f"{probe.length} frames: expected one label per frame or a single label."
        )
    return labels


def _plan(
    repo: SequenceRepository,
    target: str,
    probe: SourceProbe,
    provisional: str | None,
    existing: SequenceMeta | None,
    staged: SequenceMeta | None,
    write_config: WriteConfig,
    *,
    append: bool,
    force: bool,
) -> IngestPlan:
    # One read of the stored frames' layout serves both checks below.
    layout = repo.frames_layout(target) if existing is not None else None
    same_frames = layout is not None and _same_frames(layout, probe)
    compatible = same_frames and layout is not None and layout[2] == write_config.segment_length
    if append and existing is not None and not compatible:
        info = repo.info(target)
        raise ConfigError(
            f"Cannot append source {probe.uri!r} to sequence {target!r}: expected frames of "
            f"shape {info.frame_shape} and dtype {info.dtype} with segment length "
            f"{existing.segment_length}, got shape {probe.frame_shape}, dtype {probe.dtype}, "
            f"segment length {write_config.segment_length}."
        )
    if append and existing is not None and not existing.complete:
        raise ConfigError(
            f"Cannot append to sequence {target!r}: it is not complete; re-run its ingest first."
        )
    if append and existing is not None and existing.class_names != probe.class_names:
        raise ConfigError(
            f"Cannot append source {probe.uri!r} to sequence {target!r}: its label classes "
            f"{list(probe.class_names)} differ from the sequence's {list(existing.class_names)}; "
            f"give the sequence's classes (--classes {','.join(existing.class_names) or '...'})."
        )
    # The same file read into other frames or labels (another size, dtype or list of classes)
    # is written again; another segment length alone keeps the stored layout.
    redecoded = (
        not append
        and existing is not None
        and existing.complete
        and (not same_frames or existing.class_names != probe.class_names)
    )
    plan = plan_ingest(
        probe.fingerprint,
        provisional=provisional,
        existing=existing,
        staged=staged,
        compatible=compatible,
        append=append,
        force=force or redecoded,
    )
    if redecoded and plan.action == "replace" and not force:
        return replace(plan, reason="read with other options")
    return plan


def _same_frames(layout: tuple[tuple[int, ...], Any, int], probe: SourceProbe) -> bool:
    """Whether the stored frames (``frames_layout``) have the probed frame shape and type."""
    frame_shape, dtype, _ = layout
    stored, read = np.dtype(dtype), np.dtype(probe.dtype)  # a byte order is not another type
    same_type = stored.newbyteorder("<") == read.newbyteorder("<")
    return frame_shape == tuple(probe.frame_shape) and same_type


def _execute(job: _Job) -> int:
    repo, target, plan = job.repo, job.target, job.plan
    if plan.action == "append":
        return _append(job)
    blocks: Iterator[FrameBlock] | None = None
    if plan.start == 0:
        small, first, blocks = _whole_source(job)
        if small is not None:
            return _write_whole(job, small)
        _create(job, None if first is None else first.frames)
    meta = repo.meta(target, staging=plan.staging)
    try:
        total = _write_blocks(job, offset=0, blocks=blocks)
        _check_label_count(job.labels, total, job.probe)
    except SegflowError:
        if plan.start == 0:  # a fresh write of bad input leaves nothing behind
            repo.store.delete_prefix(sequence_path(target, staging=plan.staging))
        raise
    record = _source_record(job.source, job.probe, 0, total)
    done = meta.replace(
        length=total,
        frames_written=total,
        complete=True,
        fingerprint=record["fingerprint"],
        sources=(record,),
    )
    repo.write_meta(target, done, staging=plan.staging)
    if plan.staging:
        repo.promote(target)
    return total - plan.start


def _append(job: _Job) -> int:
    repo, target, probe, labels, plan = job.repo, job.target, job.probe, job.labels, job.plan
    meta = repo.meta(target)
    if meta.label_kind == "per_frame" and labels is None and probe.label_shape is None:
        raise SourceError(
            f"Cannot append source {probe.uri!r} to sequence {target!r}: the sequence has "
            f"per-frame labels but the source has none (pass --labels)."
        )
    pending = {"fingerprint": probe.fingerprint, "uri": probe.uri, "frames_written": plan.start}
    if meta.pending_append is None or plan.start == 0:
        _truncate(repo, target, meta.length)  # drop any half-appended frames of another source
    repo.write_meta(target, meta.replace(pending_append=pending))
    total = _write_blocks(job, offset=meta.length)
    _check_label_count(labels, total, probe)
    record = _source_record(job.source, probe, meta.length, meta.length + total)
    repo.write_meta(
        target,
        meta.replace(
            length=meta.length + total,
            frames_written=meta.length + total,
            pending_append=None,
            sources=(*meta.sources, record),
        ),
    )
    return total - plan.start


def _truncate(repo: SequenceRepository, target: str, length: int) -> None:
    group = repo.group(target)
    for name in ("frames", "labels", "timestamps"):
        if name not in group:
            continue
        array = array_member(group, name)
        if array.shape[0] > length and array.shape[0] != 1:
            array.resize((length, *array.shape[1:]))


def _probe_meta(
    probe: SourceProbe, write_config: WriteConfig, label_kind: Any, **state: Any
) -> SequenceMeta:
    """A sequence's metadata from its source's probe, plus ``state`` (length, completeness)."""
    return SequenceMeta(
        segment_length=write_config.segment_length,
        source_uri=probe.uri,
        frame_rate=probe.frame_rate,
        sample_interval=probe.sample_interval,
        start_time=probe.start_time,
        partition=probe.partition,
        label_kind=label_kind,
        class_names=probe.class_names,
        **state,
    )


def _create(job: _Job, sample: np.ndarray | None) -> None:
    """Create the sequence's empty arrays, their compression chosen on ``sample`` frames."""
    probe, labels, write_config = job.probe, job.labels, job.write_config
    label_shape, label_dtype, label_kind = _label_layout(labels, probe)
    meta = _probe_meta(probe, write_config, label_kind, fingerprint=probe.fingerprint)
    group = job.repo.create(
        job.target,
        frame_shape=probe.frame_shape,
        dtype=probe.dtype,
        meta=meta,
        compression=resolve_compression(write_config.compression, probe.dtype, sample),
        label_shape=label_shape,
        label_dtype=label_dtype,
        with_timestamps=probe.has_timestamps,
        staging=job.plan.staging,
    )
    if label_kind == "per_sequence" and labels is not None:
        array_member(group, "labels")[0:1] = labels[:1]


def _label_layout(
    labels: np.ndarray | None, probe: SourceProbe
) -> tuple[tuple[int, ...] | None, Any, LabelKind | None]:
    if labels is not None:
        kind: LabelKind = "per_sequence" if len(labels) == 1 else "per_frame"
        return tuple(labels.shape[1:]), labels.dtype, kind
    if probe.label_shape is not None:
        return probe.label_shape, probe.label_dtype, "per_frame"
    return None, None, None


def _whole_source(
    job: _Job,
) -> tuple[FrameBlock | None, FrameBlock | None, Iterator[FrameBlock]]:
    """The source as one block if it is small (up to :data:`WHOLE_BYTES`), else None.

    Either way also returns the first block (None for an empty source) and the blocks to
    write from frame 0, the ones already read included, so a large source is read once.
    """
    blocks = job.source.blocks(_block_frames(job.probe, job.write_config), start=0)
    first = next(blocks, None)
    if first is None or first.frames.nbytes > WHOLE_BYTES:
        return None, first, itertools.chain(() if first is None else (first,), blocks)
    # A copy: a source may reuse its block buffers for the next block.
    kept = FrameBlock(
        start=first.start,
        frames=first.frames.copy(),
        timestamps=None if first.timestamps is None else first.timestamps.copy(),
        labels=None if first.labels is None else first.labels.copy(),
    )
    second = next(blocks, None)
    if second is None:
        return kept, kept, iter(())
    return None, kept, itertools.chain((kept, second), blocks)


def _write_whole(job: _Job, block: FrameBlock) -> int:
    """Write a small source's sequence in one go, complete, with no intermediate meta.

    Nothing is written before every check passed, and the group's metadata (which marks the
    sequence complete) is written last: an interrupted write leaves no sequence, and the
    next run writes it again from the start.
    """
    repo, target, probe, labels, plan = job.repo, job.target, job.probe, job.labels, job.plan
    _check_block(block, probe)
    per_frame = labels is None or len(labels) != 1
    total = block.stop
    if total == 0:
        raise SourceError(f"Source {probe.uri!r} is empty: it holds zero frames.")
    _check_label_count(labels, total, probe)
    rows = _block_labels(block, labels, per_frame, probe)
    arrays = {"frames": block.frames}
    label_kind = _label_layout(labels, probe)[2]
    if label_kind == "per_sequence" and labels is not None:
        arrays["labels"] = labels[:1]
    elif rows is not None:
        arrays["labels"] = rows
    if probe.has_timestamps and block.timestamps is not None:
        arrays["timestamps"] = block.timestamps
    record = _source_record(job.source, probe, 0, total)
    meta = _probe_meta(
        probe,
        job.write_config,
        label_kind,
        fingerprint=record["fingerprint"],
        length=total,
        complete=True,
        frames_written=total,
        sources=(record,),
    )
    compression = resolve_compression(job.write_config.compression, probe.dtype, block.frames)
    repo.write_whole(target, arrays, meta=meta, compression=compression, staging=plan.staging)
    if plan.staging:
        repo.promote(target)
    if job.on_frames is not None:
        job.on_frames(total)
    return total


def _write_blocks(job: _Job, *, offset: int, blocks: Iterator[FrameBlock] | None = None) -> int:
    """Write every block from ``plan.start`` on; return the source's total frame count.

    ``blocks`` are the source's blocks when already started, else they are read here.
    """
    repo, target, probe, labels, plan = job.repo, job.target, job.probe, job.labels, job.plan
    group = repo.group(target, staging=plan.staging)
    per_frame = labels is None or len(labels) != 1
    hint = None if probe.length is None else offset + probe.length
    progress = _progress_recorder(repo, target, plan, job.write_config.progress_seconds)
    writer = BlockWriter(
        repo.store,
        group,
        offset=offset,
        capacity_hint=hint,
        workers=job.write_config.write_workers,
        on_progress=progress,
        per_frame_labels=per_frame,
    )
    block_frames = _block_frames(probe, job.write_config)
    stop = plan.start
    time_offset = _time_offset(repo, target, offset) if probe.has_timestamps else 0.0
    try:
        if blocks is None:
            blocks = job.source.blocks(block_frames, start=plan.start)
        for block in blocks:
            _check_block(block, probe)
            block_labels = _block_labels(block, labels, per_frame, probe)
            stamps = None if block.timestamps is None else block.timestamps + time_offset
            writer.write(block, block_labels, stamps)
            stop = block.stop
            if job.on_frames is not None:
                job.on_frames(len(block.frames))
    except BaseException:
        writer.abort()
        raise
    if stop == 0:
        writer.abort()
        raise SourceError(f"Source {probe.uri!r} is empty: it holds zero frames.")
    writer.close(offset + stop)
    return stop


def _progress_recorder(
    repo: SequenceRepository, target: str, plan: IngestPlan, interval: float
) -> Callable[[int], None]:
    """Return a callback that records durable progress in the sequence's meta.

    It writes at most every ``interval`` seconds: a meta update costs a few milliseconds
    (measured: a third of an uncompressed ingest when written after every block), and a
    resumed write redoes at most that interval's worth of blocks.
    """
    last_write = time.monotonic()

    def record(source_frames: int) -> None:
        nonlocal last_write
        if time.monotonic() - last_write < interval:
            return
        last_write = time.monotonic()
        meta = repo.meta(target, staging=plan.staging)
        if plan.action == "append":
            pending = dict(meta.pending_append or {}, frames_written=source_frames)
            repo.write_meta(target, meta.replace(pending_append=pending))
        else:
            repo.write_meta(
                target, meta.replace(frames_written=source_frames), staging=plan.staging
            )

    return record


def _block_frames(probe: SourceProbe, write_config: WriteConfig) -> int:
    frame_bytes = max(1, int(np.prod(probe.frame_shape)) * probe.dtype.itemsize)
    segment_bytes = frame_bytes * write_config.segment_length
    segments = max(1, write_config.block_bytes // segment_bytes)
    return segments * write_config.segment_length


def _check_block(block: FrameBlock, probe: SourceProbe) -> None:
    frames = block.frames
    if tuple(frames.shape[1:]) != tuple(probe.frame_shape):
        raise SourceError(
            f"Source {probe.uri!r}: frame {block.start} has shape {tuple(frames.shape[1:])}, "
            f"expected {tuple(probe.frame_shape)} like the first frame."
        )
    # NaN is a missing value (a sensor down), stored as it is: the model feeds it as the
    # feature's mean and leaves it out of the statistics. inf is no measurement at all.
    if np.issubdtype(frames.dtype, np.floating) and np.isinf(frames).any():
        bad = int(np.argwhere(np.isinf(frames.reshape(len(frames), -1)))[0][0])
        raise SourceError(
            f"Source {probe.uri!r}: frame {block.start + bad} contains inf values; "
            f"expected finite numbers (NaN for a missing value)."
        )


def _block_labels(
    block: FrameBlock, labels: np.ndarray | None, per_frame: bool, probe: SourceProbe
) -> np.ndarray | None:
    if labels is None:
        return block.labels
    if not per_frame:
        return None
    if block.stop > len(labels):
        raise SourceError(
            f"Source {probe.uri!r} has more frames ({block.stop} so far) than its label file "
            f"has labels ({len(labels)}): expected one label per frame."
        )
    return labels[block.start : block.stop]


def _check_label_count(labels: np.ndarray | None, frames: int, probe: SourceProbe) -> None:
    if labels is not None and len(labels) not in (1, frames):
        raise SourceError(
            f"Label file for source {probe.uri!r} has {len(labels)} labels but the source has "
            f"{frames} frames: expected one label per frame or a single label."
        )


def _time_offset(repo: SequenceRepository, target: str, offset: int) -> float:
    """Timestamp of an appended source's first frame: one interval after the last frame."""
    if offset == 0:
        return 0.0
    group = repo.group(target)
    if "timestamps" not in group:
        return 0.0
    stamps = np.asarray(array_member(group, "timestamps")[max(0, offset - 2) : offset])
    step = float(stamps[-1] - stamps[-2]) if len(stamps) == 2 else 0.0
    return float(stamps[-1]) + step if len(stamps) else 0.0


def _source_record(source: Source, probe: SourceProbe, start: int, stop: int) -> dict[str, Any]:
    """What the sequence records about a source it holds frames ``[start, stop)`` of."""
    fingerprint = getattr(source, "fingerprint", None)
    final = fingerprint() if fingerprint is not None else None  # exact even if deferred
    return {
        "uri": probe.uri,
        "fingerprint": probe.fingerprint if final is None else final.value,
        "start": start,
        "stop": stop,
        "record": None if final is None else final.record(),
    }
