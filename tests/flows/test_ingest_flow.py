"""The ingest flow end to end on a temporary Prefect server, and the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.ingest import ingest
from segflow.config import IngestParams, StoreConfig, WriteConfig
from segflow.ingest import IngestReport
from segflow_cli.app import app
from storage import open_store
from storage.sequences import SequenceRepository
from tests.prefect_harness import artifact_of_run

pytestmark = pytest.mark.usefixtures("prefect_server")


def _npy(path: Path, n: int, seed: int = 0, dtype: str = "float32") -> str:
    np.save(path, np.random.default_rng(seed).normal(size=(n, 4)).astype(dtype))
    return str(path)


def test_flow_writes_summary_and_skips_on_rerun(tmp_path: Path) -> None:
    for i in range(3):
        _npy(tmp_path / f"s{i}.npy", 20 + i, seed=i)
    params = IngestParams(
        sources=[str(tmp_path / "*.npy")],
        store=StoreConfig(url=str(tmp_path / "store")),
        write=WriteConfig(segment_length=8),
    )
    state = ingest(params, return_state=True)
    assert state.is_completed()
    report = state.result()
    assert isinstance(report, IngestReport)
    assert report.summary.written == 3 and report.summary.frames == 63
    assert [r.sequence_id for r in report.results] == ["s0", "s1", "s2"]
    artifact = artifact_of_run("ingest-summary", state.state_details.flow_run_id)
    assert artifact is not None and "3 written" in artifact.description
    rerun = ingest(params, return_state=True).result()
    assert rerun.summary.skipped == 3 and rerun.summary.written == 0


def test_flow_fails_on_bad_source_but_keeps_others(tmp_path: Path) -> None:
    _npy(tmp_path / "good.npy", 10)
    bad = np.ones((10, 4), dtype="float32")
    bad[3, 2] = np.inf  # (NaN would be a missing value, stored)
    np.save(tmp_path / "bad.npy", bad)
    params = IngestParams(
        sources=[str(tmp_path / "good.npy"), str(tmp_path / "bad.npy")],
        store=StoreConfig(url=str(tmp_path / "store")),
    )
    state = ingest(params, return_state=True)
    assert state.is_failed()
    assert "bad.npy" in state.message and "NaN" in state.message
    report = state.result(raise_on_failure=False)
    assert [r.sequence_id for r in report.failed] == ["bad"] and report.summary.written == 1
    repo = SequenceRepository(open_store(tmp_path / "store"))
    assert repo.ids() == ["good"] and repo.info("good").complete


def test_cli_ingest_then_inspect_json(tmp_path: Path) -> None:
    runner = CliRunner()
    src = _npy(tmp_path / "clip.npy", 33)
    store = str(tmp_path / "store")
    result = runner.invoke(
        app, ["ingest", src, "--store", store, "--id", "c1", "--segment-length", "8", "--json"]
    )
    assert result.exit_code == 0, result.output
    ingested = json.loads(result.stdout)
    assert list(ingested) == ["summary", "results"] and ingested["summary"]["written"] == 1
    assert ingested["results"][0]["sequence_id"] == "c1" and ingested["results"][0]["frames"] == 33
    result = runner.invoke(app, ["ingest", src, "--store", store, "--id", "c1"])
    assert result.exit_code == 0, result.output
    assert "0 written, 0 appended, 1 skipped, 0 failed" in result.output
    result = runner.invoke(app, ["inspect", "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (seq,) = document["sequences"]
    assert (seq["id"], seq["length"], seq["frame_shape"], seq["dtype"]) == (
        "c1",
        33,
        [4],
        "float32",
    )
    assert seq["chunks"] == [8, 4] and seq["complete"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["--store", "ftp://host/x"], "Unknown store URL scheme"),
        (["--segment-length", "0"], "segment_length"),
        (["--id", "../x"], "Invalid sequence id"),
    ],
)
def test_cli_bad_arguments_exit_non_zero(tmp_path: Path, args: list[str], message: str) -> None:
    src = _npy(tmp_path / "clip.npy", 5)
    result = CliRunner().invoke(app, ["ingest", src, *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "segflow-data").exists()


def test_cli_missing_source_names_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["ingest", str(tmp_path / "missing.mp4"), "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 1
    assert "missing.mp4" in result.output


def test_flow_on_dask_cluster(tmp_path: Path) -> None:
    for i in range(3):
        _npy(tmp_path / f"d{i}.npy", 12 + i, seed=i)
    params = IngestParams(
        sources=[str(tmp_path / "d*.npy")],
        store=StoreConfig(url=str(tmp_path / "store")),
        use_dask=True,
    )
    state = ingest(params, return_state=True)
    assert state.is_completed(), state.message
    assert state.result().summary.written == 3
    repo = SequenceRepository(open_store(tmp_path / "store"))
    assert [repo.info(i).length for i in repo.ids()] == [12, 13, 14]
