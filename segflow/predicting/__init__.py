"""Prediction runs: stream stored sequences through a trained model, durably.

:func:`predict` does, for one model tag:

1. select the sequences (:mod:`segflow.selection`) and load the model
   (:func:`segflow.registry.load_model`: the export ``models/<tag>``, else the latest training
   checkpoint ``runs/train-<tag>``); refuse bad input before writing anything;
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

A sharded run (:mod:`~segflow.predicting.shards`) splits the selection into shards balanced
by frames; each shard is a durable run of its own (``predict(..., shard=...)``: its own
checkpoints and lock), so shards go at once on different workers and a retried one resumes.

The package is cut at its seams: :mod:`~segflow.predicting.plan` (the frozen per-sequence
:class:`~segflow.predicting.plan.PlanEntry`, the decisions, what a checkpoint's cursor
carries), :mod:`~segflow.predicting.execute` (the stream loop, the row buffers and the
writer, saving), :mod:`~segflow.predicting.report` (what a run reports) and
:mod:`~segflow.predicting.run` (:func:`predict`, which composes them).
"""

from segflow.predicting.cache import ModelCache
from segflow.predicting.report import PredictReport, SequenceReport, ShardOutcome, merge_reports
from segflow.predicting.run import predict
from segflow.predicting.shards import Shard, hold_tag, plan_prediction_shards, plan_shards
from segflow.registry import LoadedModel, load_model

__all__ = [
    "LoadedModel",
    "ModelCache",
    "PredictReport",
    "SequenceReport",
    "Shard",
    "ShardOutcome",
    "hold_tag",
    "load_model",
    "merge_reports",
    "plan_prediction_shards",
    "plan_shards",
    "predict",
]
