"""The plan of a prediction run: what it does with each sequence, as frozen data.

:func:`plan_entries` decides, for each selected sequence, to *predict* it from frame 0,
*continue* it from its saved final state over its new frames, or *skip* it. A checkpoint of
the run carries its :class:`SavedPlan` (the plan, the initial states of the continued
sequences not started yet, the predictions' metadata) in its cursor, under a :func:`plan_key`
that says which parameters and model it belongs to; :func:`resumable` finds one a run can
carry on. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from segflow.config import PredictParams, Recipe
from segflow.engine.chunks import ChunkSource, SequenceChunks, ZarrChunks
from segflow.engine.shaping import shape_sequence
from segflow.errors import ConfigError
from segflow.registry import LoadedModel
from storage.base import Store
from storage.predictions import PredictionMeta, PredictionRepository
from storage.sequences import SequenceMeta, SequenceRepository

if TYPE_CHECKING:
    from segflow.checkpoint import CheckpointManager, Cursor

__all__ = [
    "Action",
    "PlanEntry",
    "SavedPlan",
    "State",
    "StateShapes",
    "check_frames",
    "decide",
    "forecast_times",
    "model_inputs",
    "output_chunk",
    "plan_entries",
    "plan_key",
    "resumable",
    "still_there",
    "usable_state",
    "zero_state",
]

#: What a run does with a sequence.
Action = Literal["predict", "continue", "skip"]
#: A lane's LSTM state: ``lstm_<i>/h`` and ``lstm_<i>/c`` -> a vector of the layer's units.
State = dict[str, np.ndarray]


@dataclass(frozen=True)
class PlanEntry:
    """One selected sequence and what this run does with it.

    Attributes:
        id: The sequence id.
        action: ``predict`` (from frame 0), ``continue`` (new frames only) or ``skip``.
        offset: First frame predicted by this run.
        stop: Frames covered by the predictions afterwards.
        fingerprint: The sequence's source fingerprint.
        sources: The sequence's source records over ``[0, stop)``.
        chunk: Time chunk of the outputs (see :func:`output_chunk`; a continued sequence's
            is that of its existing outputs).

    >>> entry = PlanEntry("a", "continue", 10, 25, "f", ({"path": "x"},), 8)
    >>> entry.frames
    15
    >>> PlanEntry.from_json(entry.to_json()) == entry
    True
    """

    id: str
    action: Action
    offset: int
    stop: int
    fingerprint: str
    sources: tuple[dict[str, Any], ...]
    chunk: int

    @property
    def frames(self) -> int:
        """Frames this run streams through the model."""
        return self.stop - self.offset

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {**asdict(self), "sources": [dict(s) for s in self.sources]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanEntry:
        """Build from :meth:`to_json` output."""
        return cls(**{**data, "sources": tuple(data["sources"])})


#: Bytes of outputs a time chunk of predictions holds at least (many-to-many). One segment of
#: a few outputs is a few hundred bytes: a file or an object each (measured: 14,600 chunk
#: files of 256 bytes for 470,000 frames took 13.5 s to write, more than the model's steps).
OUTPUT_CHUNK_BYTES = 256 * 1024


def output_chunk(segment_length: int, outputs: int, *, many: bool = True) -> int:
    """Rows per time chunk of new predictions: whole segments, at least :data:`OUTPUT_CHUNK_BYTES`.

    A chunk is a whole number of the sequence's segments, so a segment's rows never straddle
    two chunks; many-to-one predictions (one row) keep one row per chunk.

    >>> output_chunk(32, 2), output_chunk(32, 4096), output_chunk(100, 3)
    (32768, 32, 21900)
    >>> output_chunk(64, 2, many=False)
    1
    """
    if not many:
        return 1
    rows = OUTPUT_CHUNK_BYTES // (4 * max(outputs, 1))  # float32 outputs
    return segment_length * max(1, -(-rows // segment_length))


# -- deciding ----------------------------------------------------------------------------------


def forecast_times(timestamps: np.ndarray, horizon: int) -> np.ndarray:
    """The time each prediction row forecasts: that of frame ``t + horizon`` for row ``t``;
    past the last frame, extrapolated by the median step between frames (NaN with one frame).

    >>> forecast_times(np.array([0.0, 1.0, 2.0, 4.0]), 2).tolist()
    [2.0, 4.0, 5.0, 6.0]
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    count = len(stamps)
    target = np.arange(count) + horizon
    inside = target < count
    out = np.full(count, np.nan)
    out[inside] = stamps[target[inside]]
    if count > 1:
        step = float(np.median(np.diff(stamps)))
        out[~inside] = stamps[-1] + (target[~inside] - (count - 1)) * step
    return out


def check_frames(repo: SequenceRepository, ids: Sequence[str], model: LoadedModel) -> None:
    """Refuse sequences the model cannot take before anything is written: frames of another
    shape, or no labels where the model's inputs include them.

    Raises:
        ConfigError: Naming the model's and the sequence's input shapes, or the missing labels.
    """
    expected = tuple(model.config.frame_shape)
    for sequence_id in ids:
        length = repo.require_complete(sequence_id).length
        shape = model_inputs(repo, sequence_id, length, model.recipe).row_shape
        if shape != expected:
            what = "frames" if model.recipe.inputs == "features" else "input rows"
            raise ConfigError(
                f"Model {model.checkpoint!r} expects {what} of shape {expected}, but sequence "
                f"{sequence_id!r} in store {repo.store.url!r} gives {what} of shape {shape}."
            )


def model_inputs(
    repo: SequenceRepository, sequence_id: str, stop: int, recipe: Recipe
) -> ChunkSource:
    """The model's input rows ``[0, stop)`` of a stored sequence, as the recipe shapes them
    (frames, labels or both; see :mod:`segflow.engine.shaping`).

    Raises:
        ConfigError: If the recipe reads labels and the sequence has none.
    """
    frames = ZarrChunks(repo.store, repo.frames(sequence_id, require_complete=False), stop)
    labels = None
    if recipe.inputs != "features":
        array = repo.labels(sequence_id)
        if array is not None:
            labels = ZarrChunks(repo.store, array, stop)
    sequence = SequenceChunks(sequence_id, frames, labels)
    return shape_sequence(sequence, recipe, targets=False).frames


def plan_entries(
    repo: SequenceRepository,
    preds: PredictionRepository,
    tag: str,
    ids: Sequence[str],
    model: LoadedModel,
    recompute: bool,
    shapes: StateShapes | None = None,
) -> tuple[list[PlanEntry], dict[str, State]]:
    """Decide each sequence's action; return the entries and the continued ones' states.

    A sequence to continue whose saved state does not fit the model's state variables
    (``shapes``, see :func:`usable_state`) is predicted from frame 0.
    """
    shapes = shapes or {}
    entries, states = [], {}
    many = model.recipe.windowed or model.config.head == "many_to_many"
    for sequence_id in ids:
        seq = repo.require_complete(sequence_id)
        old = None if recompute else preds.find_meta(tag, sequence_id)
        action, offset = decide(seq, old, model)
        if action == "continue" and not model.recipe.windowed:  # windows need no state
            state = usable_state(preds.read_state(tag, sequence_id), shapes)
            if state is None:
                action, offset = "predict", 0
            else:
                states[sequence_id] = state
        if action == "predict" or old is None:
            chunk = output_chunk(seq.segment_length, model.config.outputs, many=many)
        else:
            chunk = old.segment_length  # the existing outputs' chunk
        entries.append(
            PlanEntry(
                sequence_id,
                action,
                offset,
                seq.length,
                seq.fingerprint,
                seq.sources,
                chunk,
            )
        )
    return entries, states


def decide(seq: SequenceMeta, old: PredictionMeta | None, model: LoadedModel) -> tuple[Action, int]:
    """``(action, first frame)`` for a sequence given its previous predictions, if any."""
    same_model = old is not None and (
        old.config_hash == model.config.config_hash()
        and old.checkpoint == model.checkpoint
        and old.weights_digest == model.digest
        and old.head == ("many_to_many" if model.recipe.windowed else model.config.head)
        and old.outputs == model.config.outputs
        and (old.inputs, old.horizon, old.time_steps)
        == (model.recipe.inputs, model.recipe.horizon, model.recipe.time_steps)
    )
    # The same recording: same first source, and the sources predicted are still its first ones.
    same_source = old is not None and (
        old.source_fingerprint == seq.fingerprint
        and tuple(seq.sources[: len(old.sources)]) == tuple(old.sources)
        and old.length <= seq.length
    )
    if old is None or not same_model or not same_source:
        return "predict", 0
    if not old.complete:
        # A windowed model's rows are independent: an interrupted run's durable rows stay.
        resumable = model.recipe.windowed and 0 < old.length < seq.length
        return ("continue", old.length) if resumable else ("predict", 0)
    if old.length == seq.length:
        return "skip", seq.length
    return "continue", old.length


#: The shape of one lane's row of each state variable (``lanes.state_shapes`` of the model).
StateShapes = dict[str, tuple[int, ...]]


def usable_state(state: State, shapes: StateShapes) -> State | None:
    """The saved state if it fits the model's state variables, else None (predict from scratch).

    >>> usable_state({"gru_0/h": np.zeros(3)}, {"gru_0/h": (3,)}) is not None
    True
    >>> usable_state({"lstm_0/h": np.zeros(3)}, {"gru_0/h": (3,)}) is None
    True
    """
    if set(state) != set(shapes) or any(state[k].shape != shape for k, shape in shapes.items()):
        return None
    return state


def zero_state(shapes: StateShapes) -> State:
    """The state of a lane no frame went through: zeros of every state variable's row.

    >>> zero_state({"lstm_0/h": (2,)})
    {'lstm_0/h': array([0., 0.], dtype=float32)}
    """
    return {key: np.zeros(shape, np.float32) for key, shape in shapes.items()}


# -- what a checkpoint carries -----------------------------------------------------------------


def plan_key(
    params: PredictParams,
    model: LoadedModel,
    store: Store,
    ids: Sequence[str] | None = None,
) -> str:
    """What a checkpoint must match to be carried on: same parameters, data store and model
    (and, for a shard's run, the same sequences: ``ids``)."""
    identity = {
        # Not the checkpoint settings nor storage options (credentials may rotate), nor
        # where the work runs (a re-run on another cluster carries on just as well).
        "params": params.model_dump(
            mode="json",
            exclude={
                "checkpoints": True,
                "store": {"storage_options", "credentials_block"},
                "dask_address": True,
                "dask_workers": True,
            },
        ),
        "store": store.url,
        "checkpoint": model.checkpoint,
        "digest": model.digest,
    }
    if ids is not None:
        identity["ids"] = list(ids)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SavedPlan:
    """What a prediction checkpoint's cursor carries besides its step (``Cursor.extra``).

    Attributes:
        key: The run's :func:`plan_key`.
        entries: Every selected sequence, skipped ones too, in schedule order.
        states: Initial states of the continued sequences that have not started yet.
        base: The predictions' metadata common to every sequence.
    """

    key: str
    entries: tuple[PlanEntry, ...]
    states: dict[str, State]
    base: PredictionMeta

    def to_extra(self) -> dict[str, Any]:
        """Return the cursor's ``extra`` (JSON-serialisable)."""
        return {
            "key": self.key,
            "plan": [e.to_json() for e in self.entries],
            "states": {
                sid: {k: v.tolist() for k, v in state.items()} for sid, state in self.states.items()
            },
            "base": self.base.to_json(),
        }

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> SavedPlan:
        """Build from a cursor's ``extra`` written by :meth:`to_extra`."""
        return cls(
            key=extra["key"],
            entries=tuple(PlanEntry.from_json(d) for d in extra["plan"]),
            states={
                sid: {k: np.asarray(v, np.float32) for k, v in state.items()}
                for sid, state in extra["states"].items()
            },
            base=PredictionMeta.from_json(extra["base"]),
        )


def resumable(manager: CheckpointManager, repo: SequenceRepository, key: str) -> Cursor | None:
    """The latest predict checkpoint if this run (its :func:`plan_key`) can carry it on."""
    name = manager.latest()
    if name is None:
        return None
    cursor = manager.read_cursor(name)
    if cursor.kind != "predict" or cursor.extra.get("key") != key:
        return None  # another run's (other parameters or model): start afresh
    for data in cursor.extra["plan"]:
        entry = PlanEntry.from_json(data)
        if entry.action != "skip" and not still_there(repo, entry):
            return None
    return cursor


def still_there(repo: SequenceRepository, entry: PlanEntry) -> bool:
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
