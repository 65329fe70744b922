"""Running one partition: ingest its sources, predict their sequences, record its marker.

A partition is one unit: any failure (bad input, a missing model, a bug) is caught and
recorded as ``failed`` with its message, so one broken day never takes the others down.
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from segflow.backfill.listing import Partition
from segflow.backfill.markers import write_marker
from segflow.config import BackfillParams, IngestParams, PredictParams
from segflow.errors import ConfigError
from segflow.ids import id_from_name
from segflow.landing import LandingResult, error_message, ingest_then_predict

__all__ = [
    "PartitionResult",
    "Status",
    "ingest_params_for",
    "predict_params_for",
    "run_partition",
    "sequence_id_for",
]

Status = Literal["done", "failed", "skipped", "not run"]


@dataclass(frozen=True)
class PartitionResult:
    """What running (or skipping) one partition did.

    Attributes:
        partition: ``YYYY-MM-DD``.
        identity: The partition's identity when it was planned.
        status: ``done``, ``failed``, ``skipped`` (already done) or ``not run`` (an ordered
            backfill stopped before it, or a dry run).
        sequences: Sequence ids its sources landed in.
        frames: Frames ingested by this run.
        predicted: Frames predicted by this run.
        seconds: Wall-clock duration.
        message: Why it failed, or a note.
        mode: ``ordered`` or ``unordered``.
        finished: When it finished (ISO 8601, UTC).

    >>> row = PartitionResult("2026-01-01", "id1", "done", sequences=("cam1",))
    >>> PartitionResult.from_json(row.to_json()) == row
    True
    """

    partition: str
    identity: str
    status: Status
    sequences: tuple[str, ...] = ()
    frames: int = 0
    predicted: int = 0
    seconds: float = 0.0
    message: str = ""
    mode: str = "unordered"
    finished: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {**asdict(self), "sequences": list(self.sequences)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionResult:
        """Rebuild a result from :meth:`to_json` output."""
        return cls(**{**data, "sequences": tuple(data.get("sequences", ()))})


def sequence_id_for(uri: str, date: str, *, ordered: bool) -> str:
    """The sequence a source of partition ``date`` lands in.

    Ordered: the camera's sequence, the name without the date, so days append to it.
    Unordered: one sequence per source and day.

    >>> sequence_id_for("arc/2026-01-31/cam1_2026-01-31.mp4", "2026-01-31", ordered=True)
    'cam1'
    >>> sequence_id_for("arc/2026-01-31/cam1.mp4", "2026-01-31", ordered=False)
    '2026-01-31_cam1'
    """
    stem = id_from_name(uri.rstrip("/"))
    if not ordered:
        return id_from_name(f"{date}_{stem}")
    cleaned = re.sub(r"[-_.]{2,}", "_", stem.replace(date, "").replace(date.replace("-", ""), ""))
    return id_from_name(cleaned.strip("-_.") or "sequence")


def run_partition(
    partition: Partition, params: BackfillParams, *, run_id: str | None = None
) -> PartitionResult:
    """Ingest and predict one partition, write its marker, return its result.

    Never raises for the partition's own failures: they come back as a ``failed`` result.

    Args:
        partition: The day to run.
        params: The backfill's parameters.
        run_id: Recorded by the prediction as its run and lock owner.
    """
    started = time.perf_counter()
    store = params.store.open()
    try:
        landed = _land(partition, params, run_id)
        problem = _problem(landed)
    except Exception as error:  # noqa: BLE001 - the partition boundary: record, never spread
        landed, problem = None, error_message(error)
    result = PartitionResult(
        partition.date,
        partition.identity,
        "failed",
        message=problem,
        mode="ordered" if params.ordered else "unordered",
    )
    if landed is not None and not problem:
        result = replace(
            result,
            status="done",
            sequences=landed.landed,
            frames=landed.frames,
            predicted=landed.predicted,
        )
    result = replace(result, seconds=time.perf_counter() - started, finished=now())
    write_marker(store, params.model_tag, result)
    return result


def now() -> str:
    """The current time, UTC, ISO 8601 to the second (a result's ``finished``)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _land(partition: Partition, params: BackfillParams, run_id: str | None) -> LandingResult:
    predict = _predict_params(params) if params.predict else None
    pairs = _pairs(partition, params)
    ingest = _ingest_params(partition, params)
    return ingest_then_predict(pairs, ingest, predict, run_id, partial=False)


def _problem(landed: LandingResult) -> str:
    """Why the partition failed, or ``""``: done means all of it landed and was predicted."""
    if landed.failed:
        return "; ".join(f"{r.source}: {r.message}" for r in landed.failed)
    return landed.predict_error


def _pairs(partition: Partition, params: BackfillParams) -> list[tuple[str, str]]:
    from segflow.sources.discover import discover

    uris = discover([partition.uri], storage_options=params.store.resolved_options())
    pairs = [(u, sequence_id_for(u, partition.date, ordered=params.ordered)) for u in uris]
    seen: dict[str, str] = {}
    for uri, sid in pairs:
        if sid in seen:
            raise ConfigError(
                f"Sources {seen[sid]!r} and {uri!r} of partition {partition.date} would both "
                f"become sequence {sid!r}; rename one."
            )
        seen[sid] = uri
    return pairs


def _ingest_params(partition: Partition, params: BackfillParams) -> IngestParams:
    return ingest_params_for(partition.uri, params)


def ingest_params_for(uri: str, params: BackfillParams) -> IngestParams:
    """How a backfill ingests the folder or file ``uri`` (appending when ``ordered``)."""
    return IngestParams(
        sources=[uri],
        store=params.store,
        append=params.ordered,
        # A forced ordered day must not append its frames a second time; appends are
        # idempotent per source, which is what makes an ordered rerun safe.
        force=params.force and not params.ordered,
        source=params.source,
        write=params.write,
    )


def _predict_params(params: BackfillParams) -> PredictParams:
    return predict_params_for(params)


def predict_params_for(params: BackfillParams) -> PredictParams:
    """How a backfill predicts what it landed (the selection is set by the caller)."""
    return PredictParams(
        store=params.store,
        checkpoints=params.checkpoints,
        model_tag=params.model_tag,
        stream=params.stream,
    )
