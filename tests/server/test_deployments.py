"""``segflow serve`` against a real Prefect server: UI-style runs and schedules.

The deployments are served from one subprocess (polling every second); runs are created the
way the UI's Run button does (``POST /api/deployments/{id}/create_flow_run``) or by the
server's scheduler, and must end Completed with their outputs in the store.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository
from tests.backfill.archive import FEATURES, export_tiny_model, make_archive
from tests.server.conftest import ROOT, Server, stop_group, wait_until

DEPLOYMENTS = {
    "segflow-ingest/ingest",
    "segflow-train/train",
    "segflow-predict/predict",
    "segflow-backfill/backfill",
    "segflow-nightly/nightly",
    "segflow-demo/demo",
}
UTC = datetime.UTC


@dataclass(frozen=True)
class Served:
    """The serving process's deployments and where their outputs go."""

    ids: dict[str, str]  # "flow/deployment" -> deployment id
    store: str
    log: Path


def _deployments(api: httpx.Client) -> dict[str, str]:
    flows = {f["id"]: f["name"] for f in api.post("/flows/filter", json={}).json()}
    return {
        f"{flows.get(d['flow_id'])}/{d['name']}": d["id"]
        for d in api.post("/deployments/filter", json={}).json()
    }


@pytest.fixture(scope="module")
def served(
    prefect_api: Server, api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("served")
    landing = work / "landing"
    landing.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(landing / f"{name}.npy", rng.normal(size=(10, FEATURES)).astype("float32"))
    make_archive(work / "archive", count=3)
    export_tiny_model(str(work / "ckpt"), "m")
    log = work / "serve.log"
    command = [
        sys.executable,
        "-m",
        "segflow_cli",
        "serve",
        "--store",
        str(work / "store"),
        "--checkpoints",
        str(work / "ckpt"),
        "--landing",
        str(landing),
        "--archive",
        str(work / "archive"),
        "--model-tag",
        "m",
    ]
    env = prefect_api.env | {"PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> dict[str, str] | None:
            if process.poll() is not None:
                pytest.fail(f"segflow serve exited:\n{log.read_text()[-3000:]}")
            ids = _deployments(api)
            return ids if ids.keys() >= DEPLOYMENTS else None

        yield Served(wait_until(ready, 90, "the served deployments"), str(work / "store"), log)
    finally:
        stop_group(process)


def _wait_completed(api: httpx.Client, run_id: str, served: Served) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = api.get(f"/flow_runs/{run_id}").json()
        state = run["state"]["type"] if run.get("state") else None
        if state in ("FAILED", "CRASHED", "CANCELLED"):
            pytest.fail(
                f"flow run {run_id} ended {state}: {run['state'].get('message')}\n"
                f"{served.log.read_text()[-3000:]}"
            )
        return run if state == "COMPLETED" else None

    try:
        return wait_until(finished, 90, f"flow run {run_id} to complete")
    except pytest.fail.Exception:
        run = api.get(f"/flow_runs/{run_id}").json()
        pytest.fail(f"flow run {run_id} not completed: {run}\n{served.log.read_text()[-3000:]}")


def test_a_run_from_the_ui_completes_with_outputs_in_the_store(
    api: httpx.Client, served: Served
) -> None:
    deployment = served.ids["segflow-ingest/ingest"]
    detail = api.get(f"/deployments/{deployment}").json()
    form = detail["parameter_openapi_schema"]["definitions"]["IngestParams"]["properties"]
    assert form["append"]["description"] and detail["parameters"]["params"]["sources"]
    # What the UI's Run button sends.
    response = api.post(f"/deployments/{deployment}/create_flow_run", json={})
    assert response.status_code == 201, response.text
    run = _wait_completed(api, response.json()["id"], served)
    assert run["deployment_id"] == deployment
    repo = SequenceRepository(open_store(served.store))
    assert repo.ids() == ["a", "b"] and repo.meta("a").length == 10


def _runs_of(api: httpx.Client, deployment: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"deployment_id": {"any_": [deployment]}}}
    return api.post("/flow_runs/filter", json=body).json()


def test_the_nightly_cron_produces_a_run_that_ingests_and_predicts(
    api: httpx.Client, served: Served
) -> None:
    deployment = served.ids["segflow-nightly/nightly"]
    schedules = api.get(f"/deployments/{deployment}/schedules").json()
    assert [s["schedule"]["cron"] for s in schedules] == ["0 2 * * *"]
    # Ask the server for the cron's runs of yesterday: one, at 02:00 (the schedule endpoint
    # with past times), which the serving process then picks up as a late run.
    yesterday = datetime.datetime.now(UTC).date() - datetime.timedelta(days=1)
    start = datetime.datetime.combine(yesterday, datetime.time(0, 0), UTC)
    window = {
        "start_time": start.isoformat(),
        "end_time": (start + datetime.timedelta(hours=23)).isoformat(),
    }
    assert api.post(f"/deployments/{deployment}/schedule", json=window).status_code < 300
    runs = [
        r
        for r in _runs_of(api, deployment)
        if datetime.datetime.fromisoformat(r["expected_start_time"]) < datetime.datetime.now(UTC)
    ]
    assert [datetime.datetime.fromisoformat(r["expected_start_time"]) for r in runs] == [
        start + datetime.timedelta(hours=2)
    ]
    _wait_completed(api, runs[0]["id"], served)
    predictions = PredictionRepository(open_store(served.store))
    assert predictions.meta("m", "a").complete and predictions.read("m", "b").shape == (10, 1)


def test_an_interval_schedule_runs_on_its_own(api: httpx.Client, served: Served) -> None:
    deployment = served.ids["segflow-nightly/nightly"]
    anchor = datetime.datetime.now(UTC) + datetime.timedelta(seconds=3)
    schedule = {"interval": 3600, "anchor_date": anchor.isoformat(), "timezone": "UTC"}
    created = api.post(
        f"/deployments/{deployment}/schedules", json=[{"schedule": schedule, "active": True}]
    )
    assert created.status_code == 201, created.text
    try:
        schedule_id = created.json()[0]["id"]

        def scheduled() -> dict[str, Any] | None:
            # The scheduler names the schedule a run came from in its idempotency key.
            found = [
                r
                for r in _runs_of(api, deployment)
                if r["auto_scheduled"] and schedule_id in (r["idempotency_key"] or "")
            ]
            return min(found, key=lambda r: r["expected_start_time"]) if found else None

        run = wait_until(scheduled, 30, "the scheduler to create the interval's first run")
        assert datetime.datetime.fromisoformat(run["expected_start_time"]) >= anchor
        _wait_completed(api, run["id"], served)
    finally:
        api.delete(f"/deployments/{deployment}/schedules/{created.json()[0]['id']}")


def test_the_backfill_deployment_runs_from_the_ui_with_a_parameter_changed(
    api: httpx.Client, served: Served
) -> None:
    deployment = served.ids["segflow-backfill/backfill"]
    params = api.get(f"/deployments/{deployment}").json()["parameters"]["params"]
    body = {"parameters": {"params": {**params, "end": "2026-01-02"}}}  # edited in the Run form
    run = _wait_completed(
        api, api.post(f"/deployments/{deployment}/create_flow_run", json=body).json()["id"], served
    )
    assert run["state"]["message"].startswith("2 done, 0 failed")
    store = open_store(served.store)
    assert store.list("backfills/m") == [
        "backfills/m/2026-01-01.json",
        "backfills/m/2026-01-02.json",
        "backfills/m/_index.json",
    ]
