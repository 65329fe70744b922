"""Backfills over a 10-day archive with one broken day: ordered and unordered, core and flow.

The core tests run the executor production runs (:func:`run_plan`), with plain threads
instead of Prefect tasks; the flow tests run it with Prefect's.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from segflow.backfill import BackfillReport, make_plan, run_plan, thread_submitter
from segflow.config import BackfillParams
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.backfill.archive import CAMERAS, FRAMES, make_archive, write_day

BROKEN = "2026-01-05"
Params = Callable[..., BackfillParams]


def run_backfill(params: BackfillParams) -> BackfillReport:
    """Plan and run a backfill as the flow does, with threads instead of Prefect tasks."""
    with ThreadPoolExecutor(max_workers=params.concurrency) as pool:
        return run_plan(make_plan(params), params, thread_submitter(pool, params))


def _report(state: Any) -> BackfillReport:
    """The report a backfill flow run's state carries, whether it completed or failed."""
    report = state.result(raise_on_failure=False)
    assert isinstance(report, BackfillReport), report
    return report


def _statuses(report: BackfillReport) -> dict[str, str]:
    return {r.partition: r.status for r in report.rows}


def test_ordered_stops_at_the_broken_day_and_resumes_after_the_fix(
    tmp_path: Path, params_for: Params
) -> None:
    dates = make_archive(tmp_path / "archive", broken=BROKEN)
    params = params_for(ordered=True)
    first = run_backfill(params)
    assert first.counts == {"done": 4, "failed": 1, "skipped": 0, "not run": 5}
    assert _statuses(first)[BROKEN] == "failed" and "cam1.npy" in first.failed[0].message
    repo = SequenceRepository(open_store(params.store.url))
    # Recordings run side by side, each in day order: cam1 stops at its broken day and waits
    # for the fix; cam2's days are all fine and all appended.
    assert repo.meta("cam1").length == 4 * FRAMES and repo.meta("cam2").length == 10 * FRAMES

    write_day(tmp_path / "archive", BROKEN, seed=dates.index(BROKEN))
    second = run_backfill(params)
    assert second.counts == {"done": 6, "failed": 0, "skipped": 4, "not run": 0}
    for camera in CAMERAS:
        assert repo.meta(camera).length == 10 * FRAMES  # appended day after day, once each
    third = run_backfill(params)
    assert third.counts["skipped"] == 10 and "Nothing to do" in third.headline()


def test_ordered_predictions_continue_across_days(tmp_path: Path, params_for: Params) -> None:
    """Day-by-day continuation equals predicting the whole recording in one pass."""
    from segflow.config import PredictParams, SelectionConfig, StoreConfig
    from segflow.predicting import predict
    from tests.engine.store_helpers import write_sequence

    make_archive(tmp_path / "archive", count=3)
    params = params_for(ordered=True)
    assert run_backfill(params).counts["done"] == 3
    repo = SequenceRepository(open_store(params.store.url))
    whole = np.asarray(repo.frames("cam1")[:])
    one_pass = str(tmp_path / "one-pass")
    write_sequence(SequenceRepository(open_store(one_pass)), "cam1", whole, chunk_length=4)
    predict(
        PredictParams(
            store=StoreConfig(url=one_pass),
            selection=SelectionConfig(ids=["cam1"]),
            checkpoints=params.checkpoints,
            model_tag="m",
            stream=params.stream,
        )
    )
    stepwise = PredictionRepository(open_store(params.store.url)).read("m", "cam1")
    expected = PredictionRepository(open_store(one_pass)).read("m", "cam1")
    assert stepwise.shape == (3 * FRAMES, 1)
    np.testing.assert_allclose(stepwise, expected, atol=1e-5)


def test_unordered_runs_past_the_broken_day_and_lists_it(
    tmp_path: Path, params_for: Params
) -> None:
    dates = make_archive(tmp_path / "archive", broken=BROKEN)
    params = params_for(concurrency=3)
    first = run_backfill(params)
    assert first.counts == {"done": 9, "failed": 1, "skipped": 0, "not run": 0}
    assert [r.partition for r in first.failed] == [BROKEN]
    preds = PredictionRepository(open_store(params.store.url))
    assert preds.read("m", "2026-01-10_cam2").shape == (FRAMES, 1)

    write_day(tmp_path / "archive", BROKEN, seed=dates.index(BROKEN))
    second = run_backfill(params)
    assert _statuses(second) == {d: "done" if d == BROKEN else "skipped" for d in dates}
    forced = run_backfill(params_for(start="2026-01-02", end="2026-01-03", force=True))
    assert forced.counts["done"] == 2


# -- the flow and the command line (a temporary Prefect server) --------------------------------


@pytest.mark.usefixtures("prefect_server")
def test_flow_unordered_dry_run_then_run_then_nothing_to_do(
    tmp_path: Path, params_for: Params
) -> None:
    from flows.backfill import backfill

    make_archive(tmp_path / "archive", count=4, broken="2026-01-02")
    dry = backfill(params_for(dry_run=True), return_state=True)
    assert dry.is_completed() and _report(dry).counts["not run"] == 4
    assert not SequenceRepository(open_store(params_for().store.url)).store.list("backfills")

    state = backfill(params_for(concurrency=2), return_state=True)
    assert state.is_failed()
    report = _report(state)
    assert report.counts == {"done": 3, "failed": 1, "skipped": 0, "not run": 0}
    assert [r.partition for r in report.failed] == ["2026-01-02"]
    write_day(tmp_path / "archive", "2026-01-02", seed=1)
    assert _report(backfill(params_for(), return_state=True)).counts["done"] == 1
    again = backfill(params_for(), return_state=True)
    assert again.is_completed() and "Nothing to do: all 4" in str(again.message)


@pytest.mark.usefixtures("prefect_server")
def test_flow_ordered_stops_at_the_broken_day(tmp_path: Path, params_for: Params) -> None:
    from flows.backfill import backfill

    make_archive(tmp_path / "archive", count=3, broken="2026-01-02")
    state = backfill(params_for(ordered=True), return_state=True)
    report = _report(state)
    assert state.is_failed() and _statuses(report) == {
        "2026-01-01": "done",
        "2026-01-02": "failed",
        "2026-01-03": "not run",
    }
    assert report.rows[0].mode == "ordered" and report.rows[0].sequences == ("cam1", "cam2")


@pytest.mark.usefixtures("prefect_server")
def test_cli_ordered_backfill(tmp_path: Path, params_for: Params) -> None:
    from segflow_cli.app import app

    make_archive(tmp_path / "archive", count=3, broken="2026-01-02")
    params = params_for()
    args = [
        "backfill",
        "--archive",
        params.archive,
        "--store",
        params.store.url,
        "--checkpoints",
        params.checkpoints.url,
        "--model-tag",
        "m",
        "--ordered",
        "--segment-length",
        "4",
        "--lanes",
        "2",
    ]
    runner = CliRunner()
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0 and "Dry run: 3 of 3" in dry.output
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "1 done, 1 failed, 0 skipped, 1 not run" in failed.output
    write_day(tmp_path / "archive", "2026-01-02", seed=1)
    assert runner.invoke(app, args).exit_code == 0
    done = runner.invoke(app, [*args, "--start", "2026-01-01", "--end", "2026-01-03"])
    assert done.exit_code == 0 and "Nothing to do: all 3 partitions" in done.output
