"""Deciding what an ingest must do for one source, from what the store already holds (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from storage.sequences import SequenceMeta

Action = Literal["create", "resume", "replace", "append", "skip"]


@dataclass(frozen=True)
class IngestPlan:
    """What to do for one source.

    Attributes:
        action: ``create`` (new sequence, written in place), ``resume`` (continue an
            interrupted write of the same source), ``replace`` (a changed source: write to
            staging, swap in when whole), ``append`` (add frames to a complete sequence), or
            ``skip`` (nothing to do).
        staging: Whether the write goes to ``staging/<id>``.
        start: Source frame to start reading from (non-zero when resuming).
        reason: One line for logs and summaries.
    """

    action: Action
    staging: bool = False
    start: int = 0
    reason: str = ""


def plan_ingest(
    fingerprint: str,
    *,
    provisional: str | None = None,
    existing: SequenceMeta | None,
    staged: SequenceMeta | None,
    compatible: bool,
    append: bool,
    force: bool,
) -> IngestPlan:
    """Decide how to ingest a source with ``fingerprint`` into a sequence.

    Args:
        fingerprint: The source's fingerprint.
        provisional: The source's provisional fingerprint (size, mtime, inode), if it has one:
            an unfinished write whose hash was deferred recorded that instead.
        existing: Meta of ``sequences/<id>`` if it exists.
        staged: Meta of ``staging/<id>`` if a replacement was interrupted.
        compatible: Whether the existing arrays match the source's frame shape, dtype and
            the requested segment length (an incompatible partial write is restarted).
        append: Whether the frames are to be appended to the existing sequence.
        force: Re-ingest even if unchanged.

    Returns:
        The plan.

    >>> plan_ingest("f1", existing=None, staged=None, compatible=True, append=False, force=False)
    IngestPlan(action='create', staging=False, start=0, reason='new sequence')
    """
    if append and existing is not None:
        return _plan_append(fingerprint, existing, compatible=compatible, force=force)
    if existing is None or (not existing.complete and (not compatible or force)):
        return IngestPlan("create", reason="new sequence" if existing is None else "restart")
    same_source = existing.fingerprint == fingerprint or (
        provisional is not None and existing.fingerprint == provisional
    )
    if not existing.complete and not same_source:
        return IngestPlan("create", reason="restart: source changed during an unfinished write")
    if not existing.complete:
        start = existing.frames_written
        return IngestPlan("resume", start=start, reason=f"resume at frame {start}")
    if existing.fingerprint == fingerprint and not force:
        return IngestPlan("skip", reason="unchanged and complete")
    if staged is not None and staged.fingerprint == fingerprint and compatible and not force:
        start = staged.frames_written
        return IngestPlan(
            "replace", staging=True, start=start, reason=f"resume replacement at {start}"
        )
    reason = "forced" if force else "source changed"
    return IngestPlan("replace", staging=True, reason=reason)


def _plan_append(
    fingerprint: str, existing: SequenceMeta, *, compatible: bool, force: bool
) -> IngestPlan:
    pending = existing.pending_append
    if pending is not None and pending.get("fingerprint") == fingerprint:
        start = int(pending.get("frames_written", 0))
        return IngestPlan("append", start=start, reason=f"resume append at source frame {start}")
    if any(s.get("fingerprint") == fingerprint for s in existing.sources) and not force:
        return IngestPlan("skip", reason="already appended")
    return IngestPlan("append", reason=f"append after frame {existing.length}")
