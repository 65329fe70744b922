"""Backfills over archives partitioned by date (Prefect-free).

An archive holds one folder per day, ``<archive>/YYYY-MM-DD/<files>``, locally or under an S3
prefix. A backfill:

1. lists the partitions between ``start`` and ``end`` with one pass over the archive (one
   paginated listing on S3), each with a cheap *identity*: a digest of its files' names,
   sizes and modification stamps (ETags on S3) -- no file is opened;
2. reads what was done before: one marker object per partition,
   ``backfills/<model_tag>/<YYYY-MM-DD>.json`` in the store, plus an index of them all
   (``backfills/<model_tag>/_index.json``) so that deciding over 10,000 done partitions
   costs one listing and one read, not 10,000 reads; markers the index does not know yet
   (a run that crashed before updating it) are read one by one;
3. plans (:func:`plan_backfill`, pure): a partition is skipped when its marker says ``done``
   with the same identity, unless ``force``;
4. runs each planned partition as one unit (:func:`run_partition`: ingest its sources, then
   predict their sequences) and writes its marker.

Two modes:

* **unordered** (default): partitions are independent; a sequence per source,
  ``<YYYY-MM-DD>_<name>``; they run concurrently and a failure does not stop the others.
* **ordered**: a camera's recording continues day to day; each day's file is *appended* to
  the camera's sequence (id: the file name without the date), and prediction continues the
  grown sequence from its saved LSTM state. Days run in date order and the run stops at the
  first failure; a rerun resumes from there (ingest appends are idempotent per source, so a
  partially ingested day is completed, not duplicated).

A day that changes after later days were appended in ordered mode is appended again at the
end of the recording; the plan flags it as out of order.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from segflow.config import BackfillParams, IngestParams, PredictParams, SelectionConfig
from segflow.errors import ConfigError, SegflowError, SourceError
from segflow.ids import id_from_name
from segflow.sources.fs import filesystem, local_path
from storage.base import Store
from storage.urls import open_store

__all__ = [
    "BackfillPlan",
    "BackfillReport",
    "Partition",
    "PartitionResult",
    "PlanItem",
    "list_partitions",
    "marker_key",
    "plan_backfill",
    "read_markers",
    "run_backfill",
    "run_partition",
    "sequence_id_for",
    "update_index",
]

MARKERS = "backfills"
INDEX = "_index.json"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Predictions of one model tag are written under a lock: concurrent partitions ingest in
# parallel but take turns to predict.
_PREDICT_LOCK = threading.Lock()

Status = Literal["done", "failed", "skipped", "not run"]


# -- listing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """One day of the archive.

    Attributes:
        date: ``YYYY-MM-DD``.
        uri: The day's folder (path or URL).
        identity: Digest of the files' relative names, sizes and stamps.
        files: Number of files in the folder (recursively).
    """

    date: str
    uri: str
    identity: str
    files: int


def _is_date(name: str) -> bool:
    if not _DATE.match(name):
        return False
    try:
        datetime.date.fromisoformat(name)
    except ValueError:
        return False
    return True


def _in_range(name: str, start: str | None, end: str | None) -> bool:
    return (start is None or name >= start) and (end is None or name <= end)


def _identity(entries: Iterable[tuple[str, int, str]]) -> str:
    canonical = json.dumps(sorted(entries), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _local_files(folder: str, prefix: str = "") -> Iterator[tuple[str, int, str]]:
    """``(relative name, size, mtime_ns)`` of every file under ``folder`` (hidden ones skipped)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                yield from _local_files(entry.path, f"{prefix}{entry.name}/")
            else:
                stat = entry.stat()
                yield f"{prefix}{entry.name}", stat.st_size, str(stat.st_mtime_ns)


def _list_local(root: str, start: str | None, end: str | None) -> list[Partition]:
    try:
        days = [e for e in os.scandir(root) if e.is_dir() and _is_date(e.name)]
    except FileNotFoundError:
        raise SourceError(f"Archive {root!r} not found: expected a folder of YYYY-MM-DD/ folders.") from None
    partitions = []
    for day in sorted(days, key=lambda e: e.name):
        if _in_range(day.name, start, end):
            files = list(_local_files(day.path))
            partitions.append(Partition(day.name, day.path, _identity(files), len(files)))
    return partitions


def _stamp(info: dict[str, Any]) -> str:
    for key in ("ETag", "etag", "mtime", "LastModified", "last_modified"):
        if info.get(key) is not None:
            return str(info[key]).strip('"')
    return ""


def _list_remote(
    archive: str, start: str | None, end: str | None, storage_options: dict[str, Any] | None
) -> list[Partition]:
    fs, root = filesystem(archive, storage_options)
    root = root.rstrip("/")
    fs.invalidate_cache(root)  # listings are cached; a rerun must see new objects
    grouped: dict[str, list[tuple[str, int, str]]] = {}
    # One recursive listing of the whole prefix (paged by the filesystem), not one per day.
    for path, info in fs.find(root, detail=True).items():
        day, _, name = path[len(root) + 1 :].partition("/")
        if name and not name.rsplit("/", 1)[-1].startswith(".") and _is_date(day):
            if _in_range(day, start, end):
                grouped.setdefault(day, []).append((name, int(info.get("size") or 0), _stamp(info)))
    base = archive.rstrip("/")
    return [
        Partition(day, f"{base}/{day}", _identity(files), len(files))
        for day, files in sorted(grouped.items())
    ]


def list_partitions(
    archive: str,
    start: datetime.date | str | None = None,
    end: datetime.date | str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[Partition]:
    """List the date partitions of ``archive`` between ``start`` and ``end`` (inclusive), sorted.

    Folders that are not ``YYYY-MM-DD`` and hidden files are ignored; empty days are left out
    on S3 (a prefix with no object does not exist) and kept, with no file, locally.

    Raises:
        SourceError: If a local archive folder does not exist.

    >>> list_partitions("/no/such/archive")
    Traceback (most recent call last):
    ...
    segflow.errors.SourceError: Archive '/no/such/archive' not found: expected a folder of YYYY-MM-DD/ folders.
    """
    first = None if start is None else str(start)
    last = None if end is None else str(end)
    path = local_path(archive)
    if path is not None:
        return _list_local(path, first, last)
    return _list_remote(archive, first, last, storage_options)


# -- markers -------------------------------------------------------------------------------------


def marker_key(model_tag: str, date: str) -> str:
    """The store key of a partition's marker.

    >>> marker_key("cam-model", "2026-01-31")
    'backfills/cam-model/2026-01-31.json'
    """
    return f"{MARKERS}/{model_tag}/{date}.json"


def _index_key(model_tag: str) -> str:
    return f"{MARKERS}/{model_tag}/{INDEX}"


def _read_json(store: Store, key: str) -> dict[str, Any]:
    return json.loads(store.read_bytes(key))


def _read_index(store: Store, model_tag: str) -> dict[str, dict[str, Any]]:
    key = _index_key(model_tag)
    return _read_json(store, key)["partitions"] if store.exists(key) else {}


def read_markers(store: Store, model_tag: str, *, workers: int = 16) -> dict[str, dict[str, Any]]:
    """``{date: {"identity", "status"}}`` of every partition with a marker for ``model_tag``.

    One listing of ``backfills/<model_tag>/`` and one read of the index; only markers the
    index does not hold are read (concurrently). A marker deleted by hand is forgotten even
    if the index still names it, so deleting a marker is a way to redo one day.
    """
    prefix = f"{MARKERS}/{model_tag}/"
    dates = {
        key[len(prefix) : -len(".json")]
        for key in store.list(prefix.rstrip("/"))
        if key.endswith(".json") and not key.endswith(INDEX)
    }
    index = _read_index(store, model_tag)
    known = {d: index[d] for d in dates if d in index}
    missing = sorted(dates - known.keys())
    if missing:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            records = pool.map(lambda d: _read_json(store, marker_key(model_tag, d)), missing)
            known.update({d: _summary(r) for d, r in zip(missing, records, strict=True)})
    return known


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {"identity": record["identity"], "status": record["status"]}


def write_marker(store: Store, model_tag: str, result: PartitionResult) -> None:
    """Record ``result`` in its partition's marker (atomically replaced)."""
    data = json.dumps(result.to_json(), indent=1).encode()
    store.write_bytes(marker_key(model_tag, result.partition), data)


def update_index(
    store: Store,
    model_tag: str,
    *,
    drop: Iterable[str] = (),
    add: Iterable[PartitionResult] = (),
) -> None:
    """Rewrite the index: forget ``drop`` (about to run), record ``add`` (just finished).

    Only the backfill's parent writes the index, before and after running, so partitions
    running concurrently never race on it.
    """
    index = _read_index(store, model_tag)
    for date in drop:
        index.pop(date, None)
    for result in add:
        if result.status in ("done", "failed"):
            index[result.partition] = {"identity": result.identity, "status": result.status}
    body = {"model_tag": model_tag, "partitions": dict(sorted(index.items()))}
    store.write_bytes(_index_key(model_tag), json.dumps(body, separators=(",", ":")).encode())


# -- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanItem:
    """What a backfill does with one partition: ``run`` it or ``skip`` it, and why."""

    partition: Partition
    action: Literal["run", "skip"]
    reason: str


@dataclass(frozen=True)
class BackfillPlan:
    """The partitions of a backfill, in date order, each with its action."""

    items: tuple[PlanItem, ...]
    ordered: bool

    @property
    def todo(self) -> list[Partition]:
        """The partitions to run, in date order."""
        return [i.partition for i in self.items if i.action == "run"]

    @property
    def skipped(self) -> int:
        """How many partitions are already done."""
        return sum(i.action == "skip" for i in self.items)

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per partition for tables: partition, action, reason, files."""
        return [
            {"partition": i.partition.date, "action": i.action, "reason": i.reason,
             "files": i.partition.files}
            for i in self.items
        ]


def _decide(partition: Partition, marker: dict[str, Any] | None, force: bool) -> tuple[str, str]:
    if force:
        return "run", "forced"
    if marker is None:
        return "run", "new"
    if marker["status"] != "done":
        return "run", f"previous run {marker['status']}"
    if marker["identity"] != partition.identity:
        return "run", "files changed"
    return "skip", "done"


def plan_backfill(
    partitions: Sequence[Partition],
    markers: dict[str, dict[str, Any]],
    *,
    force: bool = False,
    ordered: bool = False,
) -> BackfillPlan:
    """Decide, for each partition, whether to run or skip it (pure).

    Args:
        partitions: The listed partitions.
        markers: ``{date: {"identity", "status"}}`` from :func:`read_markers`.
        force: Run every partition.
        ordered: Flag runs that come before a done day (their frames land after it).

    >>> p = Partition("2026-01-01", "a/2026-01-01", "id1", 1)
    >>> plan_backfill([p], {"2026-01-01": {"identity": "id1", "status": "done"}}).skipped
    1
    """
    decided = [(p, *_decide(p, markers.get(p.date), force)) for p in sorted(partitions, key=lambda p: p.date)]
    items = []
    for index, (partition, action, reason) in enumerate(decided):
        later_done = any(a == "skip" for _, a, _ in decided[index + 1 :])
        if ordered and action == "run" and later_done:
            reason += "; out of order: later days are already appended"
        items.append(PlanItem(partition, action, reason))  # type: ignore[arg-type]
    return BackfillPlan(tuple(items), ordered)


def make_plan(params: BackfillParams) -> BackfillPlan:
    """List the archive, read the markers and plan the backfill ``params`` describes."""
    partitions = list_partitions(params.archive, params.start, params.end, params.store.storage_options)
    store = open_store(params.store.url, params.store.storage_options)
    markers = {} if params.force else read_markers(store, params.model_tag)
    return plan_backfill(partitions, markers, force=params.force, ordered=params.ordered)


# -- running one partition -----------------------------------------------------------------------


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


@dataclass(frozen=True)
class PartitionResult:
    """What running (or skipping) one partition did.

    Attributes:
        partition: ``YYYY-MM-DD``.
        identity: The partition's identity when it was planned.
        status: ``done``, ``failed``, ``skipped`` (already done) or ``not run`` (an ordered
            backfill stopped before it).
        sequences: Sequence ids its sources landed in.
        frames: Frames ingested by this run.
        predicted: Frames predicted by this run.
        seconds: Wall-clock duration.
        message: Why it failed, or a note.
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


def _pairs(partition: Partition, params: BackfillParams) -> list[tuple[str, str]]:
    from segflow.sources.discover import discover

    uris = discover([partition.uri], storage_options=params.store.storage_options)
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
    return IngestParams(
        sources=[partition.uri],
        store=params.store,
        append=params.ordered,
        # A forced ordered day must not append its frames a second time; appends are
        # idempotent per source, which is what makes an ordered rerun safe.
        force=params.force and not params.ordered,
        source=params.source,
        write=params.write,
    )


def _predict(ids: list[str], params: BackfillParams, run_id: str | None) -> int:
    from segflow.predicting import predict

    predict_params = PredictParams(
        store=params.store,
        selection=SelectionConfig(ids=ids),
        checkpoints=params.checkpoints,
        model_tag=params.model_tag,
        stream=params.stream,
    )
    with _PREDICT_LOCK:
        return predict(predict_params, run_id=run_id).frames


def _work(partition: Partition, params: BackfillParams, run_id: str | None) -> tuple[list[str], int, int]:
    """Ingest the partition's sources, then predict their sequences; raise on any failure."""
    from segflow.ingest.batch import ingest_one

    ingest = _ingest_params(partition, params)
    results = [ingest_one(uri, sid, ingest) for uri, sid in _pairs(partition, params)]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise SourceError("; ".join(f"{r.source}: {r.message}" for r in failed))
    ids = [r.sequence_id for r in results]
    predicted = _predict(ids, params, run_id) if params.predict and ids else 0
    return ids, sum(r.frames for r in results), predicted


def run_partition(
    partition: Partition, params: BackfillParams, *, run_id: str | None = None
) -> PartitionResult:
    """Ingest and predict one partition, write its marker, return its result.

    Any error (bad input, a missing model, a bug) is caught and recorded as ``failed`` with
    its message, so one broken day never takes the others down.
    """
    started = time.perf_counter()
    store = open_store(params.store.url, params.store.storage_options)
    common = {"partition": partition.date, "identity": partition.identity,
              "mode": "ordered" if params.ordered else "unordered"}
    try:
        ids, frames, predicted = _work(partition, params, run_id)
        result = PartitionResult(
            **common, status="done", sequences=tuple(ids), frames=frames, predicted=predicted,
            seconds=time.perf_counter() - started, finished=_now(),
        )
    except Exception as error:  # noqa: BLE001 - the partition boundary: record, never spread
        message = str(error) if isinstance(error, SegflowError) else f"{type(error).__name__}: {error}"
        result = PartitionResult(
            **common, status="failed", seconds=time.perf_counter() - started, message=message,
            finished=_now(),
        )
    write_marker(store, params.model_tag, result)
    return result


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -- the whole backfill --------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillReport:
    """The outcome of a backfill: one row per partition of the plan, in date order."""

    rows: tuple[PartitionResult, ...]
    ordered: bool
    dry_run: bool = False
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls, plan: BackfillPlan, results: Iterable[PartitionResult], *, seconds: float,
        dry_run: bool = False,
    ) -> BackfillReport:
        """Merge the results into the plan: skipped and never-run partitions get a row too."""
        by_date = {r.partition: r for r in results}
        rows = tuple(
            by_date.get(i.partition.date) or PartitionResult(
                i.partition.date, i.partition.identity,
                "skipped" if i.action == "skip" else "not run", message=i.reason,
            )
            for i in plan.items
        )
        statuses = ("done", "failed", "skipped", "not run")
        counts = {s: sum(r.status == s for r in rows) for s in statuses}
        return cls(rows, plan.ordered, dry_run, seconds, counts)

    @property
    def failed(self) -> list[PartitionResult]:
        """The partitions that failed."""
        return [r for r in self.rows if r.status == "failed"]

    def headline(self) -> str:
        """One line for logs, the CLI and the artifact."""
        c = self.counts
        total = len(self.rows)
        if not total:
            return "No partition in the archive between the given dates: nothing to do."
        if c["skipped"] == total:
            return f"Nothing to do: all {total} partitions are already done (use force to redo)."
        if self.dry_run:
            return f"Dry run: {c['not run']} of {total} partitions would run, {c['skipped']} already done."
        return (
            f"{c['done']} done, {c['failed']} failed, {c['skipped']} skipped, "
            f"{c['not run']} not run, of {total} partitions in {self.seconds:.1f} s."
        )

    def table(self) -> list[dict[str, Any]]:
        """Rows for the final table: partition, sequences, frames, status, seconds, message."""
        return [
            {"partition": r.partition, "sequences": len(r.sequences), "frames": r.frames,
             "status": r.status, "seconds": round(r.seconds, 2), "message": r.message}
            for r in self.rows
        ]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "headline": self.headline(), "ordered": self.ordered, "dry_run": self.dry_run,
            "seconds": self.seconds, "counts": dict(self.counts),
            "rows": [r.to_json() for r in self.rows],
        }


def begin(params: BackfillParams, plan: BackfillPlan) -> Store:
    """Prepare the store before partitions run; return it.

    Forgets the planned partitions in the index (a crash leaves them to their markers), and
    creates the store's root groups once here, because concurrent first ingests into an empty
    store race on creating them.
    """
    from storage.sequences import SequenceRepository

    store = open_store(params.store.url, params.store.storage_options)
    SequenceRepository(store).ensure_root()
    update_index(store, params.model_tag, drop=[p.date for p in plan.todo])
    return store


def run_backfill(
    params: BackfillParams,
    *,
    on_result: Callable[[PartitionResult], None] | None = None,
) -> BackfillReport:
    """Plan and run the backfill ``params`` describes with plain Python (no Prefect).

    Ordered: date order, stop at the first failure. Unordered: ``params.concurrency``
    partitions at a time in threads; failures are listed, the others carry on.
    """
    started = time.perf_counter()
    plan = make_plan(params)
    if params.dry_run or not plan.todo:
        return BackfillReport.build(plan, [], seconds=time.perf_counter() - started,
                                    dry_run=params.dry_run)
    store = begin(params, plan)
    results = _run_all(plan.todo, params, on_result)
    update_index(store, params.model_tag, add=results)
    return BackfillReport.build(plan, results, seconds=time.perf_counter() - started)


def _run_all(
    todo: list[Partition],
    params: BackfillParams,
    on_result: Callable[[PartitionResult], None] | None,
) -> list[PartitionResult]:
    notify = on_result or (lambda result: None)
    results: list[PartitionResult] = []
    if params.ordered:
        for partition in todo:
            results.append(run_partition(partition, params))
            notify(results[-1])
            if results[-1].status == "failed":
                break
        return results
    with ThreadPoolExecutor(max_workers=params.concurrency) as pool:
        for result in pool.map(lambda p: run_partition(p, params), todo):
            results.append(result)
            notify(result)
    return results
