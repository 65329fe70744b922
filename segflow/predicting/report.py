"""What a prediction run reports: one row per sequence and the run's totals.

A sharded run's report (:func:`merge_reports`) sums its shards' and keeps one
:class:`ShardOutcome` per shard, saying which were retried.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from segflow.predicting.plan import Action, PlanEntry
from segflow.registry import LoadedModel

__all__ = [
    "PredictReport",
    "ProcessUsage",
    "SequenceReport",
    "ShardOutcome",
    "build_report",
    "merge_reports",
]


@dataclass(frozen=True)
class SequenceReport:
    """What a run did with one sequence.

    Attributes:
        id: The sequence id.
        action: ``predict`` (from frame 0), ``continue`` (new frames only) or ``skip``.
        start: First frame predicted by this run (``stop`` when skipped).
        stop: Frames covered by the predictions afterwards.

    >>> SequenceReport("a", "continue", 10, 25).frames
    15
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
class ShardOutcome:
    """What one shard of a sharded run did.

    Attributes:
        index: The shard's index, from 0.
        count: Shards in the run.
        sequences: Sequences in the shard.
        frames: Frames its plan streams.
        steps: Scheduler steps its last attempt ran.
        resumed_from: Step its last attempt resumed from (its checkpoint), or None.
        seconds: Wall-clock duration of its last attempt.
        retry_reason: Why an earlier attempt had begun it (its worker died, or it failed and
            was retried): the earlier attempt's error, or its lock or checkpoint found; ""
            when none had (see :attr:`retried`).
        worker: Where its last attempt ran, ``<host>:<pid>`` (a Dask worker's process).
        started: When its last attempt began, in seconds since the epoch (0: not recorded).
        cpu_seconds: CPU time of that process during the attempt (all its threads).
        threads: Threads of that process (native ones included) when the stream ended.
        cores: Cores that process may run on (its CPU affinity).

    >>> outcome = ShardOutcome(1, 2, 3, 120, 30, 10, 1.5, "worker lost", started=100.0)
    >>> outcome.name, outcome.ended, outcome.retried
    ('shard-1-of-2', 101.5, True)
    """

    index: int
    count: int
    sequences: int
    frames: int
    steps: int
    resumed_from: int | None
    seconds: float
    retry_reason: str = ""
    worker: str = ""
    started: float = 0.0
    cpu_seconds: float = 0.0
    threads: int = 0
    cores: int = 0

    @property
    def retried(self) -> bool:
        """Whether an earlier attempt had begun it (it has a :attr:`retry_reason`)."""
        return bool(self.retry_reason)

    @property
    def name(self) -> str:
        """``shard-<index>-of-<count>``."""
        return f"shard-{self.index}-of-{self.count}"

    @property
    def ended(self) -> float:
        """When its last attempt ended, in seconds since the epoch."""
        return self.started + self.seconds


@dataclass(frozen=True)
class ProcessUsage:
    """Where a run executes and what it has used so far: for a shard's placement and cost.

    Attributes:
        worker: ``<host>:<pid>`` of this process.
        started: Seconds since the epoch when taken.
        cpu: CPU seconds of this process (every thread) when taken.
        cores: Cores this process may run on (its affinity: ``taskset`` pins a worker).

    >>> usage = ProcessUsage.now()
    >>> usage.worker.endswith(f":{os.getpid()}"), usage.cores >= 1
    (True, True)
    """

    worker: str
    started: float
    cpu: float
    cores: int

    @classmethod
    def now(cls) -> ProcessUsage:
        """This process, now."""
        getaffinity = getattr(os, "sched_getaffinity", None)
        cores = len(getaffinity(0)) if getaffinity else os.cpu_count() or 1
        worker = f"{socket.gethostname()}:{os.getpid()}"
        return cls(worker, time.time(), time.process_time(), cores)

    def cpu_since(self) -> float:
        """CPU seconds this process used since :meth:`now` took this."""
        return time.process_time() - self.cpu


def process_threads() -> int:
    """Threads of this process now, native ones (TensorFlow's, zarr's) included.

    >>> process_threads() >= 1
    True
    """
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # no /proc (macOS): Python's threads only
        return threading.active_count()


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
        sequences: One row per selected sequence, in schedule order (a sharded run's:
            shard after shard).
        shards: One row per shard of a sharded run (a shard's own run: its own row); empty
            for a run in one process.
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
    shards: tuple[ShardOutcome, ...] = field(default=())

    @property
    def retried_shards(self) -> tuple[int, ...]:
        """Indexes of the shards that were retried (a worker lost, a failure retried)."""
        return tuple(s.index for s in self.shards if s.retried)

    @property
    def retries(self) -> str:
        """The retried shards and why, for a summary line ("" when none was).

        >>> row = ShardOutcome(0, 2, 1, 9, 3, None, 0.1, retry_reason="worker lost")
        >>> PredictReport("t", "c", "h", 1, 0, 0, 9, 3, None, 0.1, shards=(row,)).retries
        'shard-0-of-2 (worker lost)'
        """
        return "; ".join(f"{s.name} ({s.retry_reason})" for s in self.shards if s.retried)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        data = asdict(self)
        data["sequences"] = [asdict(row) | {"frames": row.frames} for row in self.sequences]
        data["shards"] = [asdict(row) | {"retried": row.retried} for row in self.shards]
        data["retried_shards"] = list(self.retried_shards)
        return data


def build_report(
    tag: str,
    model: LoadedModel,
    entries: Sequence[PlanEntry],
    *,
    steps: int,
    start_step: int,
    seconds: float,
) -> PredictReport:
    """The report of a run of ``entries`` (its whole plan) that ran ``steps`` steps.

    Args:
        tag: The model tag predictions were written under.
        model: The model predicted with.
        entries: Every selected sequence, skipped ones too, in schedule order.
        steps: Steps this process ran.
        start_step: Step the run started from (0 for a fresh run).
        seconds: Wall-clock duration.
    """
    rows = tuple(SequenceReport(e.id, e.action, e.offset, e.stop) for e in entries)
    count = {a: sum(r.action == a for r in rows) for a in ("predict", "continue", "skip")}
    return PredictReport(
        model_tag=tag,
        checkpoint=model.checkpoint,
        config_hash=model.config.config_hash(),
        predicted=count["predict"],
        continued=count["continue"],
        skipped=count["skip"],
        frames=sum(r.frames for r in rows),
        steps=steps,
        resumed_from=start_step or None,
        seconds=seconds,
        sequences=rows,
    )


def merge_reports(reports: Sequence[PredictReport], *, seconds: float) -> PredictReport:
    """The report of a sharded run: its shards' reports summed.

    ``resumed_from`` is None (each shard's own is in its :class:`ShardOutcome`); ``seconds``
    is the whole run's wall-clock duration.

    Raises:
        ValueError: If there is no report, or they are of different models.
    """
    if not reports:
        raise ValueError("Received no shard reports, expected at least one.")
    first = reports[0]
    if any((r.model_tag, r.checkpoint) != (first.model_tag, first.checkpoint) for r in reports):
        models = sorted({(r.model_tag, r.checkpoint) for r in reports})
        raise ValueError(f"Received shard reports of several models {models}, expected one.")
    return PredictReport(
        model_tag=first.model_tag,
        checkpoint=first.checkpoint,
        config_hash=first.config_hash,
        predicted=sum(r.predicted for r in reports),
        continued=sum(r.continued for r in reports),
        skipped=sum(r.skipped for r in reports),
        frames=sum(r.frames for r in reports),
        steps=sum(r.steps for r in reports),
        resumed_from=None,
        seconds=seconds,
        sequences=tuple(row for r in reports for row in r.sequences),
        shards=tuple(sorted((s for r in reports for s in r.shards), key=lambda s: s.index)),
    )
