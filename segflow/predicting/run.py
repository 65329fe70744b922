"""A prediction run from start to end: select, load, plan (or carry on), stream, report."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from segflow.config import PredictParams
from segflow.ids import validate_id
from segflow.predicting.execute import (
    PredictionRun,
    PredictionWriter,
    stream,
    stream_windows,
    write_empty,
)
from segflow.predicting.plan import (
    SavedPlan,
    check_frames,
    model_inputs,
    plan_entries,
    plan_key,
    resumable,
)
from segflow.predicting.report import (
    PredictReport,
    ProcessUsage,
    ShardOutcome,
    build_report,
    process_threads,
)
from segflow.predicting.shards import Shard, shard_lock_name
from segflow.progress import StepCallback
from segflow.registry import LoadedModel, load_model, predict_run_key, shard_run_key
from segflow.selection import select_sequences
from storage.base import Store
from storage.predictions import PredictionMeta, PredictionRepository, now_iso
from storage.sequences import SequenceRepository

if TYPE_CHECKING:
    from segflow.checkpoint import CheckpointManager
    from segflow.engine.pipeline import StepReader

__all__ = ["outcome", "predict"]


def predict(
    params: PredictParams,
    *,
    run_id: str | None = None,
    on_step: StepCallback | None = None,
    break_lock: bool = False,
    shard: Shard | None = None,
    model: LoadedModel | None = None,
) -> PredictReport:
    """Predict every selected sequence with the model ``params.model_tag``, durably.

    Args:
        params: What to predict, with which model, where checkpoints go.
        run_id: Recorded as ``flow_run_id`` and as the lock's owner (e.g. the Prefect flow
            run id); default ``pid-<pid>``.
        on_step: Called after every step with a :class:`~segflow.progress.StepEvent`:
            ``frames`` the real frames of the step, ``step`` the steps of the schedule done
            (those before a resume included), ``steps`` all of them, ``fraction`` their ratio.
            An exception raised there stops the run like a crash would.
        break_lock: Take the tag's lock even if another run holds it (see
            :mod:`storage.predictions` for when that is safe).
        shard: Predict only this shard of the selection (see
            :mod:`segflow.predicting.shards`), as a durable run of its own: its checkpoints
            under :func:`~segflow.registry.shard_run_key`, its lock under
            :func:`~segflow.predicting.shards.shard_lock_name` (the caller holds the tag's,
            :func:`~segflow.predicting.shards.hold_tag`). A lock left by an earlier attempt of
            the same shard with the same ``run_id`` is broken: an orchestrator starts a shard
            again only once that attempt failed or its worker was lost.
        model: The model of ``params.model_tag``, already loaded (a worker keeps it for its
            next shards); default: loaded here.

    Returns:
        A :class:`~segflow.predicting.report.PredictReport`.

    Raises:
        ConfigError: Nothing selected, or frames the model cannot take.
        SequenceNotFoundError, IncompleteSequenceError: A selected id missing or not complete.
        CheckpointError: No model for the tag, or a corrupt one.
        LockedError: Another run writes predictions for the tag.
    """
    started, usage = time.monotonic(), ProcessUsage.now()
    tag = validate_id(params.model_tag, what="model tag")
    store = params.store.open()
    checkpoints = params.checkpoints.open()
    repo, preds = SequenceRepository(store), PredictionRepository(store)
    ids = select_sequences(repo, params.selection)
    if shard is not None:
        ids = shard.select(ids)
    model = model or load_model(checkpoints, tag)
    check_frames(repo, ids, model)
    owner = run_id or f"pid-{os.getpid()}"
    lock = tag if shard is None else shard_lock_name(tag, shard)
    earlier = preds.read_lock(lock) if shard is not None else None
    again = earlier is not None and earlier.get("owner") == owner
    with preds.lock(lock, owner, break_lock=break_lock or params.break_lock or again):
        run, reader = _prepare(params, model, store, checkpoints, repo, preds, ids, owner, shard)
        try:
            if model.recipe.windowed:
                steps = stream_windows(run, repo, on_step)
            else:
                steps = stream(run, reader, on_step) if reader is not None else 0
            threads = process_threads()  # the writer's and the engine's still running
        finally:
            try:
                run.writer.close()
            finally:
                run.engine.close()
        _clear(run.manager)
    seconds = time.monotonic() - started
    report = build_report(
        tag, model, run.entries, steps=steps, start_step=run.start_step, seconds=seconds
    )
    if shard is None:
        return report
    reason = _retry_reason(lock_found=again, start_step=run.start_step)
    row = outcome(shard, report, retry_reason=reason, usage=usage, threads=threads)
    return replace(report, shards=(row,))


def _retry_reason(*, lock_found: bool, start_step: int) -> str:
    """What showed that an earlier attempt of a shard had begun it ("" when nothing did)."""
    if start_step > 0:
        return f"resumed its checkpoint at step {start_step}"
    if lock_found:
        return "an earlier attempt's lock was found (its worker was lost, or it failed)"
    return ""


def outcome(
    shard: Shard,
    report: PredictReport,
    *,
    retry_reason: str = "",
    usage: ProcessUsage | None = None,
    threads: int = 0,
) -> ShardOutcome:
    """The :class:`ShardOutcome` of ``shard`` whose run reported ``report``.

    Args:
        shard: The shard.
        report: Its run's report.
        retry_reason: Why an earlier attempt had begun it ("": none had).
        usage: Taken when the run began (where it ran, when, the CPU used since).
        threads: The process's threads when the stream ended.
    """
    row = ShardOutcome(
        index=shard.index,
        count=shard.count,
        sequences=len(report.sequences),
        frames=report.frames,
        steps=report.steps,
        resumed_from=report.resumed_from,
        seconds=report.seconds,
        retry_reason=retry_reason,
    )
    if usage is None:
        return row
    return replace(
        row,
        worker=usage.worker,
        started=usage.started,
        cpu_seconds=usage.cpu_since(),
        threads=threads,
        cores=usage.cores,
    )


def _prepare(
    params: PredictParams,
    model: LoadedModel,
    store: Store,
    checkpoints: Store,
    repo: SequenceRepository,
    preds: PredictionRepository,
    ids: Sequence[str],
    owner: str,
    shard: Shard | None = None,
) -> tuple[PredictionRun, StepReader | None]:
    """Build the engine and the plan: a fresh one, or the one of the checkpoint carried on."""
    from segflow.checkpoint import CheckpointManager
    from segflow.engine.lanes import state_shapes
    from segflow.registry import training_engine

    tag = params.model_tag
    if model.recipe.time_steps is not None:  # windows: the batch size the model trained with
        shape = {"lanes": model.recipe.batch_size, "length": model.recipe.time_steps}
    else:
        shape = {"lanes": params.stream.lanes, "length": params.stream.segment_length}
    engine = training_engine(model.config, model.recipe, **shape)
    engine.model.set_weights(model.weights)
    run_key = (
        predict_run_key(tag) if shard is None else shard_run_key(tag, shard.index, shard.count)
    )
    manager = CheckpointManager(checkpoints, run_key, keep=params.checkpoints.keep)
    key = plan_key(params, model, store, None if shard is None else ids)
    cursor = resumable(manager, repo, key)
    if cursor is not None:
        manager.restore(engine, manager.latest())
        saved = SavedPlan.from_extra(cursor.extra)
        entries, states = list(saved.entries), saved.states
        base = saved.base.replace(flow_run_id=owner)
        start = cursor.step
    else:
        _clear(manager)
        shapes = {} if model.recipe.windowed else state_shapes(engine.model)
        entries, states = plan_entries(repo, preds, tag, ids, model, params.recompute, shapes)
        base = PredictionMeta(
            checkpoint=model.checkpoint,
            config_hash=model.config.config_hash(),
            weights_digest=model.digest,
            flow_run_id=owner,
            created=now_iso(),
            head="many_to_many" if model.recipe.windowed else model.config.head,
            outputs=model.config.outputs,
            inputs=model.recipe.inputs,
            horizon=model.recipe.horizon,
            time_steps=model.recipe.time_steps,
            class_names=model.class_names,
        )
        start = 0
    writer = PredictionWriter(preds, tag, [e for e in entries if e.action != "skip"], base)
    run = PredictionRun(params, engine, manager, entries, states, writer, key, start, model.recipe)
    if start == 0:
        write_empty(run)
    return run, None if model.recipe.windowed else _reader(repo, run)


def _reader(repo: SequenceRepository, run: PredictionRun) -> StepReader | None:
    """A step reader over the frames each scheduled entry still has to go through."""
    from segflow.engine.pipeline import OffsetChunks, SequenceChunks, StepReader

    if not any(e.frames for e in run.scheduled):
        return None
    sequences = []
    for entry in run.scheduled:
        source = model_inputs(repo, entry.id, entry.stop, run.recipe)
        if entry.offset:
            source = OffsetChunks(source, entry.offset)
        sequences.append(SequenceChunks(entry.id, source))
    return StepReader.from_sources(
        sequences, lanes=run.engine.lanes, segment_length=run.engine.segment_length
    )


def _clear(manager: CheckpointManager) -> None:
    """Drop a run's checkpoints (the run finished, or they belong to another plan)."""
    manager.store.delete_prefix(manager.prefix)
