"""Ingesting many sources: discovery, id assignment and per-source error capture (pure)."""

from __future__ import annotations

from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from segflow import progress
from segflow.config import IngestParams
from segflow.errors import ConfigError, SegflowError
from segflow.ids import id_from_name
from segflow.ingest.run import IngestResult, ingest_source
from segflow.sources.discover import discover
from storage.sequences import SequenceRepository
from storage.validation import require_positive_int

#: Sources of one batch ingested at once (see :func:`ingest_many`).
SOURCE_THREADS = 2


def plan_sources(params: IngestParams) -> list[tuple[str, str]]:
    """Expand ``params.sources`` and pair each source with its sequence id.

    Raises:
        SourceNotFoundError: If a path, glob or prefix matches nothing.
        ConfigError: If ``sequence_id`` or ``labels`` is given for several sources, or two
            sources would land in the same sequence.
    """
    params.store.open()  # a bad store URL fails first
    uris = discover(list(params.sources), storage_options=params.store.resolved_options())
    if (params.sequence_id or params.labels) and len(uris) != 1:
        raise ConfigError(
            f"--id and --labels apply to one source, but {len(uris)} sources were given: "
            f"{uris[:5]}{'...' if len(uris) > 5 else ''}."
        )
    pairs = [(u, params.sequence_id or id_from_name(u.rstrip("/"))) for u in uris]
    _check_unique_ids(pairs, append=params.append)
    return pairs


def group_sources(
    pairs: list[tuple[str, str]], *, workers: int, per_worker: int = 4, min_size: int = 1
) -> list[list[tuple[str, str]]]:
    """Split ``pairs`` into consecutive groups, one orchestrator task each.

    A task costs the orchestrator ~40 ms with Prefect's thread runner and 100-400 ms on Dask,
    as much as ingesting a small video clip or dozens of small recordings, so many small
    sources share a task; there are still ``per_worker`` groups per worker (fewer if a group
    would hold under ``min_size`` sources, but at least one per worker), so the workers stay
    evenly loaded.

    >>> [len(g) for g in group_sources([("u", "s")] * 10, workers=2, per_worker=2)]
    [3, 3, 2, 2]
    >>> [len(g) for g in group_sources([("u", "s")] * 3, workers=2)]
    [1, 1, 1]
    >>> [len(g) for g in group_sources([("u", "s")] * 40, workers=2, min_size=16)]
    [20, 20]
    """
    require_positive_int("workers", workers)
    require_positive_int("per_worker", per_worker)
    require_positive_int("min_size", min_size)
    count = min(len(pairs), workers * per_worker, max(workers, len(pairs) // min_size))
    if count == 0:
        return []
    size, extra = divmod(len(pairs), count)
    groups, start = [], 0
    for index in range(count):
        stop = start + size + (index < extra)
        groups.append(pairs[start:stop])
        start = stop
    return groups


def by_sequence(pairs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Group ``pairs`` by sequence id: one group per sequence, its sources in their order.

    Appends to one sequence must land in order, one after the other; different sequences
    are independent.

    >>> by_sequence([("a1", "a"), ("b1", "b"), ("a2", "a")])
    [[('a1', 'a'), ('a2', 'a')], [('b1', 'b')]]
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for uri, sequence_id in pairs:
        groups.setdefault(sequence_id, []).append((uri, sequence_id))
    return list(groups.values())


def in_input_order(pairs: list[tuple[str, str]], results: list[IngestResult]) -> list[IngestResult]:
    """Put ``results`` (one per pair, in any order) in the order of ``pairs``.

    >>> results = [IngestResult("b", "y", "written"), IngestResult("a", "x", "skipped")]
    >>> [r.source for r in in_input_order([("a", "x"), ("b", "y")], results)]
    ['a', 'b']

    Raises:
        ValueError: If a pair has no result.
    """
    waiting: dict[tuple[str, str], deque[IngestResult]] = defaultdict(deque)
    for result in results:
        waiting[(result.source, result.sequence_id)].append(result)
    try:
        return [waiting[pair].popleft() for pair in pairs]
    except IndexError:
        missing = [p for p in pairs if not waiting[p]]
        raise ValueError(
            f"Expected one result per source, got none for {missing[:3]}; got {len(results)} "
            f"results for {len(pairs)} sources."
        ) from None


def _check_unique_ids(pairs: list[tuple[str, str]], *, append: bool) -> None:
    seen: dict[str, str] = {}
    for uri, sequence_id in pairs:
        if sequence_id in seen and not append:
            raise ConfigError(
                f"Sources {seen[sequence_id]!r} and {uri!r} would both become sequence "
                f"{sequence_id!r}; rename one or ingest them separately with --id."
            )
        seen[sequence_id] = uri


def ingest_many(
    pairs: list[tuple[str, str]], params: IngestParams, *, threads: int = SOURCE_THREADS
) -> list[IngestResult]:
    """Ingest ``(uri, sequence id)`` pairs into one opened store; results in input order.

    Sources of different sequences go ``threads`` at a time: a small source's time is mostly
    waiting on the store (its completion marker is flushed to disk, or a request to an object
    store), which other sources' reading and encoding can overlap. Appends go one at a time,
    in order, since several may extend the same sequence.

    >>> ingest_many([], IngestParams(sources=["x.npy"]))
    []
    """
    require_positive_int("threads", threads)
    if not pairs:
        return []
    repo = SequenceRepository(params.store.open())
    options = params.store.resolved_options()
    if params.append or threads == 1 or len(pairs) == 1:
        return [ingest_one(u, s, params, repo=repo, options=options) for u, s in pairs]
    with ThreadPoolExecutor(threads, thread_name_prefix="segflow-ingest") as pool:
        return list(
            pool.map(lambda p: ingest_one(p[0], p[1], params, repo=repo, options=options), pairs)
        )


def ingest_one(
    uri: str,
    sequence_id: str,
    params: IngestParams,
    *,
    repo: SequenceRepository | None = None,
    options: dict[str, Any] | None = None,
) -> IngestResult:
    """Ingest one source, turning a segflow error into a ``failed`` result.

    ``repo`` and ``options`` (the store's resolved fsspec options) are opened from
    ``params`` unless given: a batch opens them once.
    """
    repo = SequenceRepository(params.store.open()) if repo is None else repo
    options = params.store.resolved_options() if options is None else options
    on_frames = progress.frames_callback(sequence_id)
    try:
        return ingest_source(
            uri,
            repo,
            sequence_id=sequence_id,
            labels_path=params.labels,
            append=params.append,
            force=params.force,
            source_config=params.source,
            write_config=params.write,
            on_frames=on_frames,
            storage_options=options,
        )
    except SegflowError as error:
        return IngestResult(uri, sequence_id, "failed", message=str(error))
    finally:
        progress.finish(sequence_id)
