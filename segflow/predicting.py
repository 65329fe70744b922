"""Prediction runs: stream stored sequences through a trained model, durably.

:func:`predict` does, for one model tag:

1. select the sequences and load the model (the export ``models/<tag>``, else the latest
   training checkpoint ``runs/train-<tag>``); refuse bad input before writing anything;
2. plan each sequence: *predict* from frame 0, *continue* from its saved final state over
   only the frames added since (same model, same recording grown by appended sources), or
   *skip* (already complete for every frame);
3. take the tag's lock and stream the planned frames through a :class:`StreamingEngine`,
   writing each sequence's output rows as its segments finish;
4. every ``checkpoints.every_steps`` steps, flush the rows, record each sequence's durable
   ``length``, then checkpoint the cursor and lane state (run key ``predict-<tag>``); a run
   killed at any point is re-run with the same parameters and carries on from that
   checkpoint with identical results, no gaps and no duplicates.

Predictions do not depend on ``stream.lanes`` or ``stream.segment_length``: a lane's state
goes through every frame of its sequence in order, whatever the split into segments.

A continued sequence enters the schedule as a sequence of its new frames only; at its first
step its lane is not reset but loaded with the saved state. The initial states of the
continued sequences that have not started yet are kept in each checkpoint's cursor, so a
resumed run never reads a state that the interrupted run already replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from segflow.config import ModelConfig, PredictParams
from segflow.errors import CheckpointError, ConfigError
from segflow.ids import validate_id
from storage.base import Store
from storage.predictions import PredictionMeta, PredictionRepository, now_iso
from storage.sequences import SequenceMeta, SequenceRepository
from storage.urls import open_store

if TYPE_CHECKING:
    from segflow.checkpoint import CheckpointManager, Cursor
    from segflow.engine.engine import StreamingEngine
    from segflow.engine.pipeline import StepReader
    from segflow.engine.scheduler import Step

__all__ = ["LoadedModel", "PredictReport", "SequenceReport", "load_model", "predict"]

Action = Literal["predict", "continue", "skip"]
StepCallback = Callable[[dict[str, Any]], None]


# -- reports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceReport:
    """What a run did with one sequence.

    Attributes:
        id: The sequence id.
        action: ``predict`` (from frame 0), ``continue`` (new frames only) or ``skip``.
        start: First frame predicted by this run (``stop`` when skipped).
        stop: Frames covered by the predictions afterwards.
    """

    id: str
    action: Action
    start: int
    stop: int

    @property
    def frames(self) -> int:
        """Frames predicted by this run."""
        return self.stop - self.start


@dataclass(frozen=True)
class PredictReport:
    """Summary of a prediction run.

    Attributes:
        model_tag: The tag predictions were written under.
        checkpoint: Where the model came from.
        config_hash: Hash of the model configuration.
        predicted: Sequences predicted from frame 0.
        continued: Sequences continued over their new frames.
        skipped: Sequences already complete and unchanged.
        frames: Frames the run's plan streams (after a resume, those streamed before the
            interruption included).
        steps: Scheduler steps run by this process (after a resume: the remaining ones).
        resumed_from: Step the run resumed from, or None for a fresh run.
        seconds: Wall-clock duration.
        sequences: One row per selected sequence, in schedule order.
    """

    model_tag: str
    checkpoint: str
    config_hash: str
    predicted: int
    continued: int
    skipped: int
    frames: int
    steps: int
    resumed_from: int | None
    seconds: float
    sequences: tuple[SequenceReport, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["sequences"] = [asdict(row) | {"frames": row.frames} for row in self.sequences]
        return data


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A trained model ready to go into an engine.

    Attributes:
        config: Its configuration.
        weights: Weights in ``build_model(config, ...).get_weights()`` order.
        checkpoint: Where it came from: ``models/<tag>:<checkpoint>`` or
            ``runs/train-<tag>/ckpt-<n>``.
        digest: Digest of the weights; changes whenever the model does.
    """

    config: ModelConfig
    weights: list[np.ndarray]
    checkpoint: str
    digest: str


def load_model(store: Store, model_tag: str) -> LoadedModel:
    """Load the exported model ``model_tag``, else the latest checkpoint of its training run.

    Raises:
        CheckpointError: If there is neither, or what is there is corrupt.
    """
    from segflow.checkpoint import MANIFEST, MODELS, CheckpointManager, load_exported

    validate_id(model_tag, what="model tag")
    if store.exists(f"{MODELS}/{model_tag}/{MANIFEST}"):
        config, manifest, weights = load_exported(store, model_tag)
        origin = manifest.get("checkpoint") or manifest.get("created")
        return LoadedModel(config, weights, f"{MODELS}/{model_tag}:{origin}", _digest(weights))
    manager = CheckpointManager(store, f"train-{model_tag}")
    name = manager.latest()
    if name is None:
        raise CheckpointError(
            f"No model for tag {model_tag!r} in checkpoint store {store.url!r}: neither an "
            f"export under {MODELS}/{model_tag}/ nor a checkpoint under runs/train-{model_tag}/. "
            "Train (and export) the model first."
        )
    from segflow.engine.engine import StreamingEngine

    config, cursor = manager.read_config(name), manager.read_cursor(name)
    # The training run's own stream shape, so its lane state restores; only weights are kept.
    engine = StreamingEngine(config, lanes=cursor.lanes, segment_length=cursor.segment_length)
    manager.restore(engine, name)
    weights = engine.model.get_weights()
    return LoadedModel(config, weights, f"{manager.prefix}/{name}", _digest(weights))


def _digest(weights: Sequence[np.ndarray]) -> str:
    hasher = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:32]


def _check_frames(repo: SequenceRepository, ids: Sequence[str], model: LoadedModel) -> None:
    """Refuse sequences whose frames the model cannot take (shape) before anything is written."""
    expected = tuple(model.config.frame_shape)
    for sequence_id in ids:
        shape = tuple(repo.frames(sequence_id).shape[1:])
        if shape != expected:
            raise ConfigError(
                f"Model {model.checkpoint!r} expects frames of shape {expected}, but sequence "
                f"{sequence_id!r} in store {repo.store.url!r} has frames of shape {shape}."
            )


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One selected sequence and what this run does with it."""

    id: str
    action: Action
    offset: int  # first frame predicted by this run
    stop: int  # frames covered afterwards
    fingerprint: str
    sources: tuple[dict[str, Any], ...]  # the sequence's source records over [0, stop)
    chunk: int  # time chunk of the outputs (the sequence's segment length)

    @property
    def frames(self) -> int:
        return self.stop - self.offset

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sources": [dict(s) for s in self.sources]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Entry:
        return cls(**{**data, "sources": tuple(data["sources"])})


def _plan(
    repo: SequenceRepository,
    preds: PredictionRepository,
    tag: str,
    ids: Sequence[str],
    model: LoadedModel,
    recompute: bool,
) -> tuple[list[_Entry], dict[str, dict[str, np.ndarray]]]:
    """Decide each sequence's action; return the entries and the continued ones' states."""
    entries, states = [], {}
    for sequence_id in ids:
        seq = repo.require_complete(sequence_id)
        old = None if recompute else preds.find_meta(tag, sequence_id)
        action, offset = _decide(seq, old, model)
        if action == "continue":
            state = _usable_state(preds.read_state(tag, sequence_id), model.config)
            if state is None:
                action, offset = "predict", 0
            else:
                states[sequence_id] = state
        entries.append(
            _Entry(sequence_id, action, offset, seq.length, seq.fingerprint, seq.sources,
                   seq.segment_length)
        )
    return entries, states


def _decide(
    seq: SequenceMeta, old: PredictionMeta | None, model: LoadedModel
) -> tuple[Action, int]:
    """``(action, first frame)`` for a sequence given its previous predictions, if any."""
    same_model = old is not None and (
        old.config_hash == model.config.config_hash()
        and old.checkpoint == model.checkpoint
        and old.weights_digest == model.digest
        and old.head == model.config.head
        and old.outputs == model.config.outputs
    )
    # The same recording: same first source, and the sources predicted are still its first ones.
    same_source = old is not None and (
        old.source_fingerprint == seq.fingerprint
        and tuple(seq.sources[: len(old.sources)]) == tuple(old.sources)
        and old.length <= seq.length
    )
    if old is None or not old.complete or not same_model or not same_source:
        return "predict", 0
    if old.length == seq.length:
        return "skip", seq.length
    return "continue", old.length


def _usable_state(
    state: dict[str, np.ndarray], config: ModelConfig
) -> dict[str, np.ndarray] | None:
    """The saved state if it fits the model's LSTM layers, else None (predict from scratch)."""
    expected = {
        f"lstm_{i}/{part}": units
        for i, units in enumerate(config.lstm_units)
        for part in ("h", "c")
    }
    if set(state) != set(expected) or any(state[k].shape != (u,) for k, u in expected.items()):
        return None
    return state


# -- streaming ---------------------------------------------------------------------------------


class _RowBuffer:
    """A sequence's output rows not yet written; written whole chunks at a time."""

    def __init__(self, array: Any, start: int, chunk: int) -> None:
        self.array = array
        self.start = start  # first row not yet written
        self.chunk = chunk
        self.rows: list[np.ndarray] = []
        self.count = 0

    def add(self, rows: np.ndarray) -> None:
        self.rows.append(rows)
        self.count += len(rows)
        aligned = (self.start + self.count) // self.chunk * self.chunk
        if aligned > self.start:
            self._write(aligned)

    def flush(self) -> int:
        """Write every pending row; return the rows durable so far."""
        if self.count:
            self._write(self.start + self.count)
        return self.start

    def _write(self, stop: int) -> None:
        data = np.concatenate(self.rows) if len(self.rows) > 1 else self.rows[0]
        n = stop - self.start
        self.array[self.start : stop] = data[:n]
        self.rows = [data[n:]] if n < len(data) else []
        self.count -= n
        self.start = stop


class _Writer:
    """Writes each scheduled sequence's predictions as its segments finish."""

    def __init__(
        self,
        preds: PredictionRepository,
        tag: str,
        entries: Sequence[_Entry],
        base: PredictionMeta,
    ) -> None:
        self.preds = preds
        self.tag = tag
        self.entries = entries
        self.base = base
        self.many = base.head == "many_to_many"
        self.active: dict[int, _RowBuffer] = {}

    def slot(self, index: int, start: int, rows: np.ndarray) -> None:
        """Take the rows of one lane slot: ``start`` counts from the entry's first new frame."""
        buffer = self.active.get(index)
        if buffer is None:
            buffer = self._open(index, start)
        if self.many:
            buffer.add(rows)

    def end(self, index: int, last: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """The entry's last frame went through: write the rest, its state, mark complete."""
        entry = self.entries[index]
        buffer = self.active.pop(index)
        if self.many:
            buffer.flush()
        else:
            buffer.array[0:1] = last[None]
        self.preds.finish(self.tag, entry.id, self._meta(entry, entry.stop), state)

    def flush(self) -> None:
        """Write every pending row and record each unfinished sequence's durable length."""
        for index, buffer in self.active.items():
            entry = self.entries[index]
            durable = buffer.flush() if self.many else entry.offset
            self.preds.write_meta(self.tag, entry.id, self._meta(entry, durable, complete=False))

    def _open(self, index: int, start: int) -> _RowBuffer:
        entry = self.entries[index]
        if start == 0:  # the entry begins in this process
            if entry.action == "continue":
                self.preds.resize(self.tag, entry.id, entry.stop)
                meta = self._meta(entry, entry.offset, complete=False)
                self.preds.write_meta(self.tag, entry.id, meta)
                array = self.preds.outputs(self.tag, entry.id)
            else:
                array = self.preds.create(
                    self.tag, entry.id, rows=entry.stop, meta=self._meta(entry, 0)
                )
        else:  # resumed mid-sequence: its rows up to the checkpoint are durable
            array = self.preds.outputs(self.tag, entry.id)
        buffer = _RowBuffer(array, entry.offset + start, entry.chunk)
        self.active[index] = buffer
        return buffer

    def _meta(self, entry: _Entry, length: int, *, complete: bool = False) -> PredictionMeta:
        return self.base.replace(
            source_fingerprint=entry.fingerprint,
            sources=entry.sources,
            length=length,
            complete=complete,
            segment_length=entry.chunk,
        )


@dataclass
class _Run:
    """Everything one streaming pass needs."""

    params: PredictParams
    engine: StreamingEngine
    manager: CheckpointManager
    entries: list[_Entry]  # every selected sequence (skipped ones too)
    states: dict[str, dict[str, np.ndarray]]  # initial states of continued sequences
    writer: _Writer
    key: str  # identifies the plan's parameters and model in checkpoints
    start_step: int = 0
    scheduled: list[_Entry] = field(init=False)  # the entries streamed: slot.sequence indexes it

    def __post_init__(self) -> None:
        self.scheduled = [e for e in self.entries if e.action != "skip"]


def _stream(run: _Run, reader: StepReader, on_step: StepCallback | None) -> int:
    """Run the schedule from ``run.start_step``; return the number of steps run."""
    from segflow.engine.scheduler import assignments

    engine = run.engine
    lengths = [e.frames for e in run.scheduled]
    first_step = {
        a.sequence: a.first_step
        for a in assignments(lengths, engine.lanes, engine.segment_length)
    }
    batches = reader.iter_batches(run.start_step)
    try:
        return _loop(run, reader, batches, first_step, on_step)
    finally:
        batches.close()  # stops the reader threads at once, also when a step raised


def _loop(
    run: _Run,
    reader: StepReader,
    batches: Any,
    first_step: dict[int, int],
    on_step: StepCallback | None,
) -> int:
    from segflow.engine.engine import as_tensor, pipelined

    engine, every = run.engine, run.params.checkpoints.every_steps
    dtype = np.dtype(engine.config.input_dtype)

    def predict(pair: tuple[Step, dict[str, np.ndarray]]) -> np.ndarray:
        # In the step thread, so carried-over states are injected when no step is running.
        step, batch = pair
        reset = _inject_states(run, step, batch["reset"])
        frames = batch["frames"]
        if frames.dtype != dtype:
            frames = frames.astype(dtype)
        inputs = (as_tensor(frames), as_tensor(batch["mask"]), as_tensor(reset))
        return engine.predict_step(*inputs).numpy()

    done = 0
    pairs = zip(reader.steps(run.start_step), batches, strict=True)
    for (step, _), outputs in pipelined(pairs, predict):
        _write_step(run, step, outputs)
        done += 1
        following = step.index + 1
        if following % every == 0 and following < reader.num_steps:
            _save(run, following, first_step)
        if on_step is not None:
            frames_done = sum(slot.valid for slot in step.slots)
            on_step({"step": step.index, "steps": reader.num_steps, "frames": frames_done})
    return done


def _write_step(run: _Run, step: Step, outputs: np.ndarray) -> None:
    """Hand each lane's rows to the writer; finish the sequences that end in this step."""
    from segflow.engine.lanes import read_lane_state

    lane_state = None
    for lane, slot in enumerate(step.slots):
        if slot.sequence is None:
            continue
        run.writer.slot(slot.sequence, slot.start, outputs[lane, : slot.valid])
        if slot.ends:
            # Padded frames leave the state as it is, so this is the state after the last frame.
            lane_state = lane_state or read_lane_state(run.engine.model)
            state = {key: rows[lane] for key, rows in lane_state.items()}
            run.writer.end(slot.sequence, outputs[lane], state)


def _inject_states(run: _Run, step: Step, reset: np.ndarray) -> np.ndarray:
    """Load the saved state into the lanes where a continued sequence begins; adjust resets."""
    from segflow.engine.lanes import read_lane_state, write_lane_state

    starting = [
        (lane, run.scheduled[slot.sequence])
        for lane, slot in enumerate(step.slots)
        if slot.sequence is not None and slot.start == 0
        and run.scheduled[slot.sequence].action == "continue"
    ]
    if not starting:
        return reset
    reset = reset.copy()
    state = read_lane_state(run.engine.model)
    for lane, entry in starting:
        reset[lane] = False
        for key, value in run.states[entry.id].items():
            state[key][lane] = value
    write_lane_state(run.engine.model, state)
    return reset


def _save(run: _Run, step: int, first_step: dict[int, int]) -> None:
    """Flush the rows of steps before ``step``, then checkpoint the cursor and lane state."""
    from segflow.checkpoint import Cursor

    run.writer.flush()
    pending = {  # continued sequences not started yet still need their initial state
        e.id: {k: v.tolist() for k, v in run.states[e.id].items()}
        for i, e in enumerate(run.scheduled)
        if e.action == "continue" and first_step[i] >= step
    }
    cursor = Cursor(
        kind="predict",
        epoch=0,
        step=step,
        ids=tuple(e.id for e in run.scheduled),
        lanes=run.engine.lanes,
        segment_length=run.engine.segment_length,
        extra={
            "key": run.key,
            "plan": [e.to_json() for e in run.entries],
            "states": pending,
            "base": run.writer.base.to_json(),
        },
    )
    run.manager.save(run.engine, cursor, run.engine.config)


# -- resuming ----------------------------------------------------------------------------------


def _run_key(params: PredictParams, model: LoadedModel, store: Store) -> str:
    """What a checkpoint must match to be carried on: same parameters, data store and model."""
    identity = {
        # Not the checkpoint settings nor storage options (credentials may rotate).
        "params": params.model_dump(
            mode="json", exclude={"checkpoints": True, "store": {"storage_options"}}
        ),
        "store": store.url,
        "checkpoint": model.checkpoint,
        "digest": model.digest,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def _resumable(
    manager: CheckpointManager, repo: SequenceRepository, model: LoadedModel, key: str
) -> Cursor | None:
    """The latest predict checkpoint if this run can carry it on, else None."""
    name = manager.latest()
    if name is None:
        return None
    cursor = manager.read_cursor(name)
    if cursor.kind != "predict" or cursor.extra.get("key") != key:
        return None  # another run's (other parameters or model): start afresh
    for data in cursor.extra["plan"]:
        entry = _Entry.from_json(data)
        if entry.action != "skip" and not _still_there(repo, entry):
            return None
    return cursor


def _still_there(repo: SequenceRepository, entry: _Entry) -> bool:
    """Whether the frames the entry covers are still stored, unchanged."""
    if not repo.exists(entry.id):
        return False
    seq = repo.meta(entry.id)
    return (
        seq.complete
        and seq.fingerprint == entry.fingerprint
        and seq.length >= entry.stop
        and tuple(seq.sources[: len(entry.sources)]) == tuple(entry.sources)
    )


def _clear(manager: CheckpointManager) -> None:
    """Drop a run's checkpoints (the run finished, or they belong to another plan)."""
    manager.store.delete_prefix(manager.prefix)


# -- the run -----------------------------------------------------------------------------------


def predict(
    params: PredictParams,
    *,
    run_id: str | None = None,
    on_step: StepCallback | None = None,
    break_lock: bool = False,
) -> PredictReport:
    """Predict every selected sequence with the model ``params.model_tag``, durably.

    Args:
        params: What to predict, with which model, where checkpoints go.
        run_id: Recorded as ``flow_run_id`` and as the lock's owner (e.g. the Prefect flow
            run id); default ``pid-<pid>``.
        on_step: Called after every step with ``{"step", "steps", "frames"}`` (progress; an exception
            raised there stops the run like a crash would).
        break_lock: Take the tag's lock even if another run holds it (see
            :mod:`storage.predictions` for when that is safe).

    Returns:
        A :class:`PredictReport`.

    Raises:
        ConfigError: Nothing selected, or frames the model cannot take.
        SequenceNotFoundError, IncompleteSequenceError: A selected id missing or not complete.
        CheckpointError: No model for the tag, or a corrupt one.
        LockedError: Another run writes predictions for the tag.
    """
    from segflow.training import select_sequences  # the same selection as training

    started = time.monotonic()
    tag = validate_id(params.model_tag, what="model tag")
    store = open_store(params.store.url, params.store.storage_options)
    checkpoints = open_store(params.checkpoints.url, params.checkpoints.storage_options)
    repo, preds = SequenceRepository(store), PredictionRepository(store)
    ids = select_sequences(repo, params.selection)
    model = load_model(checkpoints, tag)
    _check_frames(repo, ids, model)
    owner = run_id or f"pid-{os.getpid()}"
    with preds.lock(tag, owner, break_lock=break_lock):
        run, reader = _prepare(params, model, store, checkpoints, repo, preds, ids, owner)
        steps = _stream(run, reader, on_step) if reader is not None else 0
        _clear(run.manager)
    return _report(run, model, steps, time.monotonic() - started)


def _prepare(
    params: PredictParams,
    model: LoadedModel,
    store: Store,
    checkpoints: Store,
    repo: SequenceRepository,
    preds: PredictionRepository,
    ids: Sequence[str],
    owner: str,
) -> tuple[_Run, StepReader | None]:
    """Build the engine and the plan: a fresh one, or the one of the checkpoint carried on."""
    from segflow.checkpoint import CheckpointManager
    from segflow.engine.engine import StreamingEngine

    tag = params.model_tag
    engine = StreamingEngine(
        model.config, lanes=params.stream.lanes, segment_length=params.stream.segment_length
    )
    engine.model.set_weights(model.weights)
    manager = CheckpointManager(checkpoints, f"predict-{tag}", keep=params.checkpoints.keep)
    key = _run_key(params, model, store)
    cursor = _resumable(manager, repo, model, key)
    if cursor is not None:
        manager.restore(engine, manager.latest())
        entries = [_Entry.from_json(d) for d in cursor.extra["plan"]]
        states = {
            sid: {k: np.asarray(v, np.float32) for k, v in state.items()}
            for sid, state in cursor.extra["states"].items()
        }
        base = PredictionMeta.from_json(cursor.extra["base"]).replace(flow_run_id=owner)
        start = cursor.step
    else:
        _clear(manager)
        entries, states = _plan(repo, preds, tag, ids, model, params.recompute)
        base = PredictionMeta(
            checkpoint=model.checkpoint,
            config_hash=model.config.config_hash(),
            weights_digest=model.digest,
            flow_run_id=owner,
            created=now_iso(),
            head=model.config.head,
            outputs=model.config.outputs,
        )
        start = 0
    writer = _Writer(preds, tag, [e for e in entries if e.action != "skip"], base)
    run = _Run(params, engine, manager, entries, states, writer, key, start)
    if start == 0:
        _write_empty(run)
    return run, _reader(repo, run)


def _write_empty(run: _Run) -> None:
    """Zero-frame sequences are never scheduled: their (empty) predictions are written here."""
    zero = {
        f"lstm_{i}/{part}": np.zeros(units, np.float32)
        for i, units in enumerate(run.engine.config.lstm_units)
        for part in ("h", "c")
    }
    for entry in run.scheduled:
        if entry.frames == 0:
            meta = run.writer._meta(entry, 0)
            run.writer.preds.create(run.writer.tag, entry.id, rows=0, meta=meta)
            run.writer.preds.finish(run.writer.tag, entry.id, meta, zero)


def _reader(repo: SequenceRepository, run: _Run) -> StepReader | None:
    """A step reader over the frames each scheduled entry still has to go through."""
    from segflow.engine.pipeline import OffsetChunks, SequenceChunks, StepReader, ZarrChunks

    if not any(e.frames for e in run.scheduled):
        return None
    sequences = []
    for entry in run.scheduled:
        chunks = ZarrChunks(repo.store, repo.frames(entry.id), entry.stop)
        source = chunks if entry.offset == 0 else OffsetChunks(chunks, entry.offset)
        sequences.append(SequenceChunks(entry.id, source))
    return StepReader.from_sources(
        sequences, lanes=run.engine.lanes, segment_length=run.engine.segment_length
    )


def _report(run: _Run, model: LoadedModel, steps: int, seconds: float) -> PredictReport:
    rows = tuple(SequenceReport(e.id, e.action, e.offset, e.stop) for e in run.entries)
    count = {a: sum(r.action == a for r in rows) for a in ("predict", "continue", "skip")}
    return PredictReport(
        model_tag=run.params.model_tag,
        checkpoint=model.checkpoint,
        config_hash=model.config.config_hash(),
        predicted=count["predict"],
        continued=count["continue"],
        skipped=count["skip"],
        frames=sum(r.frames for r in rows),
        steps=steps,
        resumed_from=run.start_step or None,
        seconds=seconds,
        sequences=rows,
    )
