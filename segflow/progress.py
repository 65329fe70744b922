"""A process-wide hook through which long-running core code reports progress.

Flows run tasks in the same process (thread task runner), so the CLI installs a reporter
(a Rich progress bar) and the core reports frames to it; with no reporter installed,
reporting does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Reporter", "StepCallback", "StepEvent", "finish", "frames_callback", "set_reporter"]


@dataclass(frozen=True)
class StepEvent:
    """One finished unit of a long run (a predict or train step, a backfill partition).

    Core runs pass one to their ``on_step`` callback after every unit; the Prefect tasks turn
    them into progress artifacts and CLI bars.

    Attributes:
        frames: Real frames (or units, for a backfill: partitions) this unit completed.
        fraction: Share of the whole run done so far, from 0 to 1.
        step: Units done so far in this run (1 after the first).
        steps: Units of the whole run, if known.
        loss: The training loss after this step, when training.

    >>> event = StepEvent(frames=64, fraction=0.25, step=1, steps=4)
    >>> event.fraction
    0.25
    """

    frames: int
    fraction: float
    step: int = 0
    steps: int | None = None
    loss: float | None = None


#: What core runs call after every unit of work.
StepCallback = Callable[[StepEvent], None]


class Reporter(Protocol):
    """Receives progress events."""

    def start(self, name: str, total: int | None) -> None:
        """A unit of work ``name`` started; ``total`` frames if known."""

    def advance(self, name: str, frames: int) -> None:
        """``frames`` more frames of ``name`` are done."""

    def finish(self, name: str) -> None:
        """``name`` is finished."""


_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    """Install ``reporter`` (or remove it with None)."""
    global _reporter
    _reporter = reporter


def frames_callback(name: str, total: int | None = None) -> Callable[[int], None]:
    """Announce ``name`` and return a callback that advances it by a number of frames."""
    reporter = _reporter
    if reporter is None:
        return lambda frames: None
    reporter.start(name, total)
    return lambda frames: reporter.advance(name, frames)


def finish(name: str) -> None:
    """Mark ``name`` finished on the installed reporter, if any."""
    if _reporter is not None:
        _reporter.finish(name)
