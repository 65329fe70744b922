"""One definition of each deployment: ``segflow serve`` and ``deployments/prefect.yaml`` agree.

Fast and serverless: the flows are imported and their runner deployments built, but nothing
talks to a Prefect API. ``tests/server/test_deployments.py`` serves them to a real server.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, get_type_hints

import prefect
import pytest
import yaml
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint

from flows.deployments import (
    PREFECT_YAML,
    Deployment,
    Locations,
    build_deployments,
    main,
    prefect_yaml,
    render_prefect_yaml,
)
from segflow_cli.serve import serve

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = build_deployments()


def _ids(definition: Deployment) -> str:
    return definition.name


def test_the_yaml_in_the_repository_is_the_generated_one() -> None:
    assert PREFECT_YAML == ROOT / "deployments" / "prefect.yaml"
    assert PREFECT_YAML.read_text() == render_prefect_yaml(), (
        "deployments/prefect.yaml is stale: python -m flows.deployments "
        "--output deployments/prefect.yaml"
    )
    # The header is comments only: the file reads back as exactly the document.
    assert yaml.safe_load(PREFECT_YAML.read_text()) == prefect_yaml()


def test_regenerating_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "prefect.yaml"
    assert main(["--output", str(output)]) == 0
    assert output.read_text() == PREFECT_YAML.read_text()
    assert main(["--check"]) == 0
    assert main([]) == 0 and capsys.readouterr().out == PREFECT_YAML.read_text()


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "prefect.yaml"
    stale.write_text(PREFECT_YAML.read_text().replace("0 2 * * *", "0 3 * * *"))
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--check", "--output", str(tmp_path / "missing.yaml")]) == 1


def test_names_are_unique_and_every_deployment_is_in_the_yaml() -> None:
    names = [d.name for d in DEFINITIONS]
    assert len(set(names)) == len(names)
    assert [d["name"] for d in prefect_yaml()["deployments"]] == names
    assert {"ingest", "train", "predict", "backfill", "nightly", "demo"} == set(names)


@pytest.mark.parametrize("definition", DEFINITIONS, ids=_ids)
def test_every_entrypoint_resolves_to_a_flow(
    definition: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The way a worker loads it: by file path, from the repository root.
    monkeypatch.chdir(ROOT)
    loaded: Any = load_flow_from_entrypoint(definition.entrypoint)
    assert isinstance(loaded, Flow)
    imported = definition.load_flow()
    assert isinstance(imported, Flow) and imported.name == loaded.name
    assert imported.name.startswith("segflow-")


@pytest.mark.parametrize("definition", DEFINITIONS, ids=_ids)
def test_every_default_validates_against_the_flow_parameter_model(definition: Deployment) -> None:
    flow = definition.load_flow()
    model = get_type_hints(flow.fn)["params"]
    assert list(flow.parameters.properties) == ["params"]  # one typed parameter
    assert type(definition.params) is model
    assert model.model_validate(definition.parameters["params"]) == definition.params
    # What Prefect does with a run's parameters before calling the flow.
    assert flow.validate_parameters(definition.parameters) == {"params": definition.params}


def _served(monkeypatch: pytest.MonkeyPatch, **options: Any) -> list[RunnerDeployment]:
    """The runner deployments ``segflow serve`` hands to ``prefect.serve`` (not serving them)."""
    captured: list[RunnerDeployment] = []

    def fake_serve(*deployments: RunnerDeployment, limit: int | None = None) -> None:
        captured.extend(deployments)

    monkeypatch.setattr(prefect, "serve", fake_serve)
    monkeypatch.chdir(ROOT)  # entry points are computed relative to the working directory
    serve(**options)
    return captured


def _schedules(deployment: RunnerDeployment) -> list[dict[str, Any]]:
    found = []
    for item in deployment.schedules or []:
        schedule: Any = item.schedule
        when = (
            {"cron": schedule.cron}
            if hasattr(schedule, "cron")
            else {"interval": schedule.interval.total_seconds()}
        )
        found.append({**when, "timezone": schedule.timezone, "active": item.active})
    return found


def test_serve_serves_what_the_yaml_deploys(monkeypatch: pytest.MonkeyPatch) -> None:
    served = {
        d.name: {
            "name": d.name,
            "entrypoint": d.entrypoint,
            "description": d.description,
            "tags": d.tags,
            "schedules": _schedules(d),
            "parameters": d.parameters,
        }
        for d in _served(monkeypatch)
    }
    in_yaml = {
        d["name"]: {
            key: d.get(key, [])
            for key in ("name", "entrypoint", "description", "tags", "schedules", "parameters")
        }
        for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    }
    assert served == in_yaml


def test_serve_options_reach_the_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    served = {
        d.name: d
        for d in _served(
            monkeypatch,
            store="s3://b/store",
            landing="s3://b/landing",
            model_tag="m",
            nightly_interval=60.0,
            s3_endpoint="http://127.0.0.1:9000",
        )
    }
    expected = build_deployments(
        Locations(
            store="s3://b/store",
            landing="s3://b/landing",
            model_tag="m",
            nightly_interval=60.0,
            storage_options={"endpoint_url": "http://127.0.0.1:9000"},
        )
    )
    assert {d.name: d.parameters for d in expected} == {
        name: d.parameters for name, d in served.items()
    }
    assert served["ingest"].parameters["params"]["sources"] == ["s3://b/landing"]
    assert _schedules(served["nightly"]) == [{"interval": 60.0, "timezone": "UTC", "active": True}]
    schedule: Any = (served["nightly"].schedules or [])[0].schedule
    assert schedule.interval == datetime.timedelta(seconds=60)


def test_serve_refuses_an_invalid_model_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    with pytest.raises(typer.Exit):
        _served(monkeypatch, model_tag="../escape")
