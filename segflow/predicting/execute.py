"""Running a prediction plan: stream the frames, write the rows, checkpoint, carry on.

A :class:`PredictionRun` holds what one streaming pass needs. :func:`stream` runs its lane
schedule through the engine from ``start_step``; each lane's output rows go to the
:class:`PredictionWriter`, which writes whole time chunks at a time and finishes a sequence
(rows, final state, ``complete``) when its last frame went through. Every
``checkpoints.every_steps`` steps :func:`save` flushes the rows, records each unfinished
sequence's durable length, then checkpoints the cursor and the lane state.

A continued sequence's lane is not reset at its first step but loaded with its saved state
(:func:`inject_states`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from segflow.config import PredictParams, Recipe
from segflow.predicting.plan import PlanEntry, SavedPlan, State, forecast_times, zero_state
from segflow.progress import StepCallback, StepEvent
from storage.chunks import DirectChunks
from storage.predictions import PredictionMeta, PredictionRepository

if TYPE_CHECKING:
    from segflow.checkpoint import CheckpointManager
    from segflow.engine.engine import StreamingEngine
    from segflow.engine.pipeline import StepReader
    from segflow.engine.scheduler import Step
    from segflow.windowed import WindowEngine
    from storage.base import Store
    from storage.sequences import SequenceRepository

__all__ = [
    "PredictionRun",
    "PredictionWriter",
    "RowBuffer",
    "inject_states",
    "save",
    "stream",
    "stream_windows",
    "write_empty",
    "write_step",
]

#: Chunk writes of prediction rows in flight at once.
WRITE_THREADS = 4


class RowBuffer:
    """A sequence's output rows not yet written; written whole chunks at a time.

    Rows are encoded and stored chunk by chunk with :class:`~storage.chunks.DirectChunks`,
    on ``pool`` when given (the writes of several lanes overlap each other and the model's
    next step). A chunk that already holds durable rows (the rows before ``start``: written
    by a checkpoint's flush, or by an earlier run of a continued sequence) is read, merged
    and replaced atomically, so a crash mid-write never loses them; a chunk holding only new
    rows is written in place. :meth:`flush` returns only once every write is stored.

    Args:
        array: The sequence's output array (rows along the first axis).
        start: First row not yet written.
        store: The store holding ``array``, for chunk writes without zarr (None: zarr only).
        pool: Where chunk writes run (None: in the calling thread).
    """

    def __init__(
        self,
        array: Any,
        start: int,
        store: Store | None = None,
        pool: Executor | None = None,
    ) -> None:
        self.array = array
        self.start = start  # first row not yet written
        self.chunk = int(array.chunks[0])  # the array's own: older predictions keep theirs
        self.rows: list[np.ndarray] = []
        self.count = 0
        self.direct = DirectChunks.for_array(array) if store is not None else None
        self.store = store
        self.pool = pool
        self.pending: list[Future[None]] = []

    def add(self, rows: np.ndarray) -> None:
        """Take the next rows; write every whole chunk they complete."""
        self.rows.append(rows)
        self.count += len(rows)
        aligned = (self.start + self.count) // self.chunk * self.chunk
        if aligned > self.start:
            self._write(aligned)

    def flush(self, *, wait: bool = True) -> int:
        """Write every pending row; return the rows durable so far (written, with ``wait``).

        Args:
            wait: Return once the rows are stored; False: once they are handed to the pool
                (call :meth:`wait` before recording them as durable).
        """
        if self.count:
            self._write(self.start + self.count)
        if wait:
            self.wait()
        return self.start

    def wait(self) -> None:
        """Return once every chunk write handed to the pool is stored (raise its error)."""
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def _write(self, stop: int) -> None:
        data = np.concatenate(self.rows) if len(self.rows) > 1 else self.rows[0]
        n = stop - self.start
        if self.direct is not None:
            self._write_chunks(np.array(data[:n]))  # a copy: the caller's rows may change
        else:
            self.array[self.start : stop] = data[:n]
        self.rows = [data[n:]] if n < len(data) else []
        self.count -= n
        self.start = stop

    def _write_chunks(self, data: np.ndarray) -> None:
        """Store ``data`` from row ``self.start`` on, chunk by chunk."""
        assert self.direct is not None and self.store is not None
        size, start = self.chunk, self.start
        position, end = start, start + len(data)
        while position < end:
            index, offset = divmod(position, size)
            stop = min(end, (index + 1) * size)
            rows = data[position - start : stop - start]
            if offset:  # durable rows before ours in this chunk: merge, replace atomically
                self.wait()  # an earlier write of this chunk may still be in flight
                merged = np.array(self.direct.read(self.store, index))  # a writable copy
                merged[offset : offset + len(rows)] = rows
                self.direct.write(self.store, index, merged, atomic=True)
            else:
                if len(rows) < size:  # the fill value in the rest, as zarr writes it
                    pad = np.full(
                        (size - len(rows), *rows.shape[1:]), self.array.fill_value, rows.dtype
                    )
                    rows = np.concatenate([rows, pad])
                self._submit(index, rows)
            position = stop

    def _submit(self, index: int, rows: np.ndarray) -> None:
        assert self.direct is not None and self.store is not None
        if self.pool is None:
            self.direct.write(self.store, index, rows)
        else:
            self.pending.append(self.pool.submit(self.direct.write, self.store, index, rows))


class PredictionWriter:
    """Writes each scheduled sequence's predictions as its segments finish.

    Args:
        preds: The predictions of the data store.
        tag: The model tag predictions are written under.
        entries: The scheduled entries: a slot's ``sequence`` indexes them.
        base: Metadata common to every sequence's predictions.
    """

    def __init__(
        self,
        preds: PredictionRepository,
        tag: str,
        entries: Sequence[PlanEntry],
        base: PredictionMeta,
    ) -> None:
        self.preds = preds
        self.tag = tag
        self.entries = entries
        self.base = base
        self.many = base.head == "many_to_many"
        self.active: dict[int, RowBuffer] = {}
        # A few chunk PUTs in flight: an object store's latency, not its bandwidth, bounds
        # one writer; local writes gain little but lose nothing.
        self.pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="segflow-rows")
        # One thread: sequences are marked complete in the order they ended.
        self.finisher = ThreadPoolExecutor(1, thread_name_prefix="segflow-finish")
        self.finishing: list[Future[None]] = []

    def close(self) -> None:
        """Finish the sequences that ended, then stop the writer's threads.

        Raises:
            Exception: What finishing a sequence raised (it stays incomplete).
        """
        try:
            self.wait_finished()
        finally:
            self.finisher.shutdown(wait=True)
            self.pool.shutdown(wait=True)

    def slot(self, index: int, start: int, rows: np.ndarray) -> None:
        """Take the rows of one lane slot: ``start`` counts from the entry's first new frame."""
        buffer = self.active.get(index)
        if buffer is None:
            buffer = self._open(index, start)
        if self.many:
            buffer.add(rows)

    def end(self, index: int, last: np.ndarray, state: State) -> None:
        """The entry's last frame went through: write the rest, its state, mark complete.

        The rows are handed over here; the rest runs on a thread of its own, in order, while
        the next steps stream: it waits for the rows, then stores the state and the metadata
        (``complete``) last. :meth:`flush` and :meth:`close` wait for it.
        """
        entry = self.entries[index]
        buffer = self.active.pop(index)
        if self.many:
            buffer.flush(wait=False)
        else:
            buffer.array[0:1] = last[None]
        state = {key: np.array(value) for key, value in state.items()}  # lanes move on
        self.finishing.append(self.finisher.submit(self._finish, entry, buffer, state))

    def _finish(self, entry: PlanEntry, buffer: RowBuffer, state: State) -> None:
        buffer.wait()
        if self.many:
            self._write_target_times(entry)
        self.preds.finish(self.tag, entry.id, self.meta(entry, entry.stop), state)

    def wait_finished(self) -> None:
        """Return once every sequence handed to :meth:`end` is complete (raise its error)."""
        finishing, self.finishing = self.finishing, []
        for future in finishing:
            future.result()

    def flush(self) -> None:
        """Write every pending row and record each unfinished sequence's durable length.

        Sequences that ended are complete when this returns (a checkpoint taken after it
        does not run them again).
        """
        self.wait_finished()
        for index, buffer in self.active.items():
            entry = self.entries[index]
            durable = buffer.flush() if self.many else entry.offset
            self.preds.write_meta(self.tag, entry.id, self.meta(entry, durable, complete=False))

    def write_empty(self, entry: PlanEntry, state: State) -> None:
        """Write the complete, empty predictions of a sequence of zero frames."""
        meta = self.meta(entry, 0)
        self.preds.create(self.tag, entry.id, rows=0, meta=meta)
        self.preds.finish(self.tag, entry.id, meta, state)

    def meta(self, entry: PlanEntry, length: int, *, complete: bool = False) -> PredictionMeta:
        """The metadata of ``entry``'s predictions covering ``length`` frames."""
        return self.base.replace(
            source_fingerprint=entry.fingerprint,
            sources=entry.sources,
            length=length,
            complete=complete,
            segment_length=entry.chunk,
        )

    def _write_target_times(self, entry: PlanEntry) -> None:
        from storage.sequences import SequenceRepository, sequence_path

        # Most sequences have none: one existence check instead of opening the group.
        if not self.preds.store.exists(f"{sequence_path(entry.id)}/timestamps/zarr.json"):
            return
        stamps = SequenceRepository(self.preds.store).timestamps(entry.id)
        if stamps is not None:
            times = forecast_times(np.asarray(stamps[: entry.stop]), self.base.horizon)
            self.preds.write_target_times(self.tag, entry.id, times)

    def _open(self, index: int, start: int) -> RowBuffer:
        entry = self.entries[index]
        if start == 0:  # the entry begins in this process
            if entry.action == "continue":
                self.preds.resize(self.tag, entry.id, entry.stop)
                meta = self.meta(entry, entry.offset, complete=False)
                self.preds.write_meta(self.tag, entry.id, meta)
                array = self.preds.outputs(self.tag, entry.id)
            else:
                array = self.preds.create(
                    self.tag, entry.id, rows=entry.stop, meta=self.meta(entry, 0)
                )
        else:  # resumed mid-sequence: its rows up to the checkpoint are durable
            array = self.preds.outputs(self.tag, entry.id)
        buffer = RowBuffer(array, entry.offset + start, self.preds.store, self.pool)
        self.active[index] = buffer
        return buffer


@dataclass
class PredictionRun:
    """Everything one streaming pass needs.

    Attributes:
        params: The run's parameters.
        engine: The engine, holding the model's weights (and, resumed, the lane state); a
            windowed model's engine for a windowed recipe.
        manager: The checkpoints of the run.
        entries: Every selected sequence (skipped ones too).
        states: Initial states of the continued sequences.
        writer: Writes the predictions.
        key: Identifies the plan's parameters and model in checkpoints (see ``plan_key``).
        start_step: The step to start from (non-zero when resumed).
        recipe: What the model sees (its inputs are shaped from frames and labels by it).
        scheduled: The entries streamed: a slot's ``sequence`` indexes them.
    """

    params: PredictParams
    engine: StreamingEngine | WindowEngine
    manager: CheckpointManager
    entries: list[PlanEntry]
    states: dict[str, State]
    writer: PredictionWriter
    key: str
    start_step: int = 0
    recipe: Recipe = field(default_factory=Recipe)
    scheduled: list[PlanEntry] = field(init=False)

    def __post_init__(self) -> None:
        self.scheduled = [e for e in self.entries if e.action != "skip"]


def write_empty(run: PredictionRun) -> None:
    """Zero-frame sequences are never scheduled: their (empty) predictions are written here."""
    from segflow.engine.lanes import state_shapes

    zero = zero_state({} if run.recipe.windowed else state_shapes(run.engine.model))
    for entry in run.scheduled:
        if entry.frames == 0:
            run.writer.write_empty(entry, zero)


def stream(run: PredictionRun, reader: StepReader, on_step: StepCallback | None) -> int:
    """Run the schedule from ``run.start_step``; return the number of steps run.

    Args:
        run: The run.
        reader: Reads the batches of the scheduled entries' frames.
        on_step: Called after every step with a :class:`~segflow.progress.StepEvent`; an
            exception raised there stops the run like a crash would.
    """
    from segflow.engine.scheduler import assignments

    engine, every = cast("StreamingEngine", run.engine), run.params.checkpoints.every_steps
    lengths = [e.frames for e in run.scheduled]
    first_step = {
        a.sequence: a.first_step for a in assignments(lengths, engine.lanes, engine.segment_length)
    }
    # Run in the step thread, so carried-over states are injected when no step is running.
    inject = lambda step, reset: inject_states(run, step, reset)  # noqa: E731
    done = 0
    for step, outputs in engine.stream(reader, "predict", start_step=run.start_step, before=inject):
        write_step(run, step, outputs)
        done += 1
        following = step.index + 1
        if following % every == 0 and following < reader.num_steps:
            save(run, following, first_step)
        if on_step is not None:
            on_step(
                StepEvent(
                    frames=sum(slot.valid for slot in step.slots),
                    fraction=following / reader.num_steps,
                    step=following,
                    steps=reader.num_steps,
                )
            )
    return done


def stream_windows(
    run: PredictionRun, repo: SequenceRepository, on_step: StepCallback | None
) -> int:
    """Predict every scheduled entry of a windowed model's run; return the blocks predicted.

    A windowed model has no state: row ``t`` needs only rows ``t-N+1 .. t``, so each entry is
    predicted from its first new row, reading back ``N-1`` rows (a continued or interrupted
    sequence carries on where its durable rows end). Rows are flushed and the durable length
    recorded after every block, so a crash loses at most a block.
    """
    from segflow.engine.pipeline import SequenceChunks
    from segflow.predicting.plan import model_inputs
    from segflow.windowed import window_predictions

    engine = cast("WindowEngine", run.engine)
    total = sum(entry.frames for entry in run.scheduled) or 1
    done = blocks = 0
    for index, entry in enumerate(run.scheduled):
        if not entry.frames:
            continue  # written by write_empty
        seq = SequenceChunks(entry.id, model_inputs(repo, entry.id, entry.stop, run.recipe))
        last = np.zeros(0, np.float32)
        for first, rows in window_predictions(engine, seq, start=entry.offset):
            run.writer.slot(index, first - entry.offset, rows)
            run.writer.flush()
            last, done, blocks = rows[-1], done + len(rows), blocks + 1
            if on_step is not None:
                on_step(StepEvent(frames=len(rows), fraction=done / total, step=blocks))
        run.writer.end(index, last, {})  # no state to continue from: windows need none
    return blocks


def write_step(run: PredictionRun, step: Step, outputs: np.ndarray) -> None:
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


def inject_states(run: PredictionRun, step: Step, reset: np.ndarray) -> np.ndarray:
    """Load the saved state into the lanes where a continued sequence begins; adjust resets."""
    from segflow.engine.lanes import read_lane_state, write_lane_state

    starting = [
        (lane, run.scheduled[slot.sequence])
        for lane, slot in enumerate(step.slots)
        if slot.sequence is not None
        and slot.start == 0
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


def save(run: PredictionRun, step: int, first_step: dict[int, int]) -> None:
    """Flush the rows of steps before ``step``, then checkpoint the cursor and lane state.

    Args:
        run: The run.
        step: The next step to run: where a run resumed from this checkpoint starts.
        first_step: Each scheduled entry's first step (indexed like ``run.scheduled``).
    """
    from segflow.checkpoint import Cursor

    run.writer.flush()
    pending = {  # continued sequences not started yet still need their initial state
        e.id: run.states[e.id]
        for i, e in enumerate(run.scheduled)
        if e.action == "continue" and first_step[i] >= step
    }
    saved = SavedPlan(run.key, tuple(run.entries), pending, run.writer.base)
    cursor = Cursor(
        kind="predict",
        epoch=0,
        step=step,
        ids=tuple(e.id for e in run.scheduled),
        lanes=run.engine.lanes,
        segment_length=run.engine.segment_length,
        extra=saved.to_extra(),
    )
    run.manager.save(run.engine, cursor, run.engine.config)
