"""Forwarding core progress callbacks to the CLI reporter and a Prefect progress artifact."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from segflow import progress


class StepProgress:
    """Receives ``on_step`` events ``{step, steps, frames, ...}`` from a core run.

    Updates the Prefect progress artifact at most every ``interval`` seconds, so reporting
    costs nothing measurable, and advances the CLI's bar (if one is installed) every step.

    Args:
        key: Artifact key (lowercase letters, digits and dashes).
        name: Name of the bar in the CLI.
        interval: Minimum seconds between artifact updates.
    """

    def __init__(self, key: str, name: str, *, interval: float = 2.0) -> None:
        self._artifact: UUID = create_progress_artifact(progress=0.0, key=key, description=name)
        self._name = name
        self._interval = interval
        self._last = 0.0
        self._frames: Callable[[int], None] | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if self._frames is None:
            self._frames = progress.frames_callback(self._name, event.get("total_frames"))
        self._frames(int(event.get("frames", 0)))
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            done = float(event.get("fraction", 0.0))
            update_progress_artifact(self._artifact, progress=100.0 * min(1.0, done))

    def close(self) -> None:
        """Mark the artifact 100% and the CLI bar finished."""
        update_progress_artifact(self._artifact, progress=100.0)
        progress.finish(self._name)
