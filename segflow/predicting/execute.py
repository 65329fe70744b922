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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from segflow.config import PredictParams, Recipe
from segflow.predicting.plan import PlanEntry, SavedPlan, State, forecast_times, zero_state
from segflow.progress import StepCallback, StepEvent
from storage.predictions import PredictionMeta, PredictionRepository

if TYPE_CHECKING:
    from segflow.checkpoint import CheckpointManager
    from segflow.engine.engine import StreamingEngine
    from segflow.engine.pipeline import StepReader
    from segflow.engine.scheduler import Step
    from segflow.windowed import WindowEngine
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


class RowBuffer:
    """A sequence's output rows not yet written; written whole chunks at a time.

    Args:
        array: The sequence's output array (rows along the first axis).
        start: First row not yet written.
        chunk: Rows per time chunk of ``array``.
    """

    def __init__(self, array: Any, start: int, chunk: int) -> None:
        self.array = array
        self.start = start  # first row not yet written
        self.chunk = chunk
        self.rows: list[np.ndarray] = []
        self.count = 0

    def add(self, rows: np.ndarray) -> None:
        """Take the next rows; write every whole chunk they complete."""
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

    def slot(self, index: int, start: int, rows: np.ndarray) -> None:
        """Take the rows of one lane slot: ``start`` counts from the entry's first new frame."""
        buffer = self.active.get(index)
        if buffer is None:
            buffer = self._open(index, start)
        if self.many:
            buffer.add(rows)

    def end(self, index: int, last: np.ndarray, state: State) -> None:
        """The entry's last frame went through: write the rest, its state, mark complete."""
        entry = self.entries[index]
        buffer = self.active.pop(index)
        if self.many:
            buffer.flush()
            self._write_target_times(entry)
        else:
            buffer.array[0:1] = last[None]
        self.preds.finish(self.tag, entry.id, self.meta(entry, entry.stop), state)

    def flush(self) -> None:
        """Write every pending row and record each unfinished sequence's durable length."""
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
        from storage.sequences import SequenceRepository

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
        buffer = RowBuffer(array, entry.offset + start, entry.chunk)
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
