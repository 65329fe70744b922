"""A Rich progress display that receives :mod:`segflow.progress` events."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from segflow import progress


class _RichReporter(ABC):
    """A Rich display installed as the process's progress reporter while in a ``with`` block."""

    _enabled: bool
    _progress: Progress
    _shown = False

    @abstractmethod
    def start(self, name: str, total: int | None) -> None:
        """A unit of work ``name`` started; ``total`` frames if known."""

    @abstractmethod
    def advance(self, name: str, frames: int) -> None:
        """``frames`` more frames of ``name`` are done."""

    @abstractmethod
    def finish(self, name: str) -> None:
        """``name`` is finished."""

    def show(self) -> None:
        """Start drawing: on the first unit of work, so a run that fails first draws nothing."""
        if not self._shown:
            self._shown = True
            self._progress.start()

    def __enter__(self) -> Self:
        # Bars only on a terminal: piped or redirected, a command prints its summary alone.
        if self._enabled and self._progress.console.is_terminal:
            progress.set_reporter(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        progress.set_reporter(None)
        if self._shown:
            self._progress.stop()


class FrameProgress(_RichReporter):
    """Shows one bar per sequence (frames done, frames/s) while installed as the reporter.

    Args:
        console: Where to draw.
        enabled: Draw nothing when False (e.g. with ``--json``).
    """

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("frames"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()  # tasks report from worker threads

    def start(self, name: str, total: int | None) -> None:
        with self._lock:
            self.show()
            self._tasks[name] = self._progress.add_task(name, total=total)

    def advance(self, name: str, frames: int) -> None:
        with self._lock:
            if name in self._tasks:
                self._progress.advance(self._tasks[name], frames)

    def finish(self, name: str) -> None:
        with self._lock:
            task_id = self._tasks.get(name)
            if task_id is not None:
                done = self._progress.tasks[task_id].completed
                self._progress.update(task_id, total=done, completed=done)


class PartitionBar(_RichReporter):
    """A Rich bar of finished partitions; receives only the backfill's progress events.

    Args:
        console: Where to draw.
        enabled: Draw nothing when False (e.g. with ``--json`` or ``--dry-run``).
    """

    #: The name the backfill reports its partitions under.
    NAME = "backfill"

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("partitions"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None

    def start(self, name: str, total: int | None) -> None:
        if name == self.NAME:
            self.show()
            self._task = self._progress.add_task(self.NAME, total=total)

    def advance(self, name: str, frames: int) -> None:
        if name == self.NAME and self._task is not None:
            self._progress.advance(self._task, frames)

    def finish(self, name: str) -> None:
        """Nothing to do: the bar stays as it ended."""
