"""Forwarding core progress callbacks to the CLI reporter and a Prefect progress artifact."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from segflow import progress
from segflow.progress import StepEvent


class StepProgress:
    """Receives the :class:`~segflow.progress.StepEvent` of every step of a core run.

    Updates the Prefect progress artifact at most every ``interval`` seconds, so reporting
    costs nothing measurable, and advances the CLI's bar (if one is installed) every step.

    Args:
        key: Artifact key (lowercase letters, digits and dashes; see :func:`artifact_key`).
        name: Name of the bar in the CLI.
        total: Units (frames, partitions) the bar counts to, if known up front.
        description: Artifact description; default ``name``.
        interval: Minimum seconds between artifact updates.
    """

    def __init__(
        self,
        key: str,
        name: str,
        *,
        total: int | None = None,
        description: str | None = None,
        interval: float = 5.0,
    ) -> None:
        # Called from a sync task, the artifact helper returns the id (not a coroutine).
        self._artifact = cast(
            UUID, create_progress_artifact(progress=0.0, key=key, description=description or name)
        )
        self._name = name
        self._total = total
        self._interval = interval
        self._last = 0.0
        self._frames: Callable[[int], None] | None = None

    def __call__(self, event: StepEvent) -> None:
        """Advance the CLI bar by ``event.frames``; update the artifact if it is time."""
        if self._frames is None:
            self._frames = progress.frames_callback(self._name, self._total)
        self._frames(event.frames)
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            update_progress_artifact(self._artifact, progress=100.0 * min(1.0, event.fraction))

    def close(self, fraction: float = 1.0) -> None:
        """Record ``fraction`` done (all of it by default) and finish the CLI bar."""
        update_progress_artifact(self._artifact, progress=100.0 * min(1.0, fraction))
        progress.finish(self._name)


def artifact_key(prefix: str, tag: str) -> str:
    """An artifact key: lowercase letters, digits and dashes only."""
    cleaned = "".join(c if c.isalnum() else "-" for c in tag.lower())
    return f"{prefix}-{cleaned}"
