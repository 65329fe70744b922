"""Ingesting many sources: discovery, id assignment and per-source error capture (pure)."""

from __future__ import annotations

from segflow import progress
from segflow.config import IngestParams
from segflow.errors import ConfigError, SegflowError
from segflow.ids import id_from_name
from segflow.ingest.run import IngestResult, ingest_source
from segflow.sources.discover import discover
from storage.sequences import SequenceRepository
from storage.validation import require_positive_int


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
    pairs: list[tuple[str, str]], *, workers: int, per_worker: int = 4
) -> list[list[tuple[str, str]]]:
    """Split ``pairs`` into consecutive groups, one orchestrator task each.

    A task costs the orchestrator ~40 ms (measured with Prefect's thread runner here), as
    much as ingesting a small video clip, so many small sources share a task; there are
    still ``per_worker`` groups per worker, so the workers stay evenly loaded.

    >>> [len(g) for g in group_sources([("u", "s")] * 10, workers=2, per_worker=2)]
    [3, 3, 2, 2]
    >>> [len(g) for g in group_sources([("u", "s")] * 3, workers=2)]
    [1, 1, 1]
    """
    require_positive_int("workers", workers)
    require_positive_int("per_worker", per_worker)
    count = min(len(pairs), workers * per_worker)
    if count == 0:
        return []
    size, extra = divmod(len(pairs), count)
    groups, start = [], 0
    for index in range(count):
        stop = start + size + (index < extra)
        groups.append(pairs[start:stop])
        start = stop
    return groups


def _check_unique_ids(pairs: list[tuple[str, str]], *, append: bool) -> None:
    seen: dict[str, str] = {}
    for uri, sequence_id in pairs:
        if sequence_id in seen and not append:
            raise ConfigError(
                f"Sources {seen[sequence_id]!r} and {uri!r} would both become sequence "
                f"{sequence_id!r}; rename one or ingest them separately with --id."
            )
        seen[sequence_id] = uri


def ingest_one(uri: str, sequence_id: str, params: IngestParams) -> IngestResult:
    """Ingest one source, turning a segflow error into a ``failed`` result."""
    repo = SequenceRepository(params.store.open())
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
            storage_options=params.store.resolved_options(),
        )
    except SegflowError as error:
        return IngestResult(uri, sequence_id, "failed", message=str(error))
    finally:
        progress.finish(sequence_id)
