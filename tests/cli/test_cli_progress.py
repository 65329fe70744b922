"""Progress bars draw on a terminal only: piped or redirected, a command prints no bars."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from segflow import progress
from segflow_cli.progress import FrameProgress, PartitionBar


@pytest.mark.parametrize("bar", [FrameProgress, PartitionBar])
@pytest.mark.parametrize("terminal", [True, False])
def test_bars_draw_only_on_a_terminal(bar: type[FrameProgress], terminal: bool) -> None:
    out = io.StringIO()
    with bar(Console(file=out, force_terminal=terminal, width=100)):
        name = PartitionBar.NAME if bar is PartitionBar else "a"  # what each bar listens to
        progress.frames_callback(name, 10)(10)
        progress.finish(name)
    assert bool(out.getvalue()) is terminal


def test_a_disabled_bar_draws_nothing_even_on_a_terminal() -> None:
    out = io.StringIO()
    with FrameProgress(Console(file=out, force_terminal=True), enabled=False):
        progress.frames_callback("a", 3)(3)
    assert out.getvalue() == ""
