"""Ingest-then-predict (the core composition) and the nightly flow around it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.config import NightlyParams, StoreConfig, StreamConfig, WriteConfig
from segflow.landing import (
    NightlyReport,
    ingest_then_predict,
    nightly_ingest_params,
    nightly_pairs,
    nightly_predict_params,
)
from storage import open_store
from storage.predictions import PredictionRepository
from tests.backfill.archive import FEATURES, FRAMES

Params = Callable[..., NightlyParams]


@pytest.fixture()
def nightly_for(tmp_path: Path, checkpoints: str) -> Params:
    """Nightly parameters over ``tmp_path/landing`` into ``tmp_path/store``."""

    def make(**changes: object) -> NightlyParams:
        base = {
            "landing": str(tmp_path / "landing"),
            "store": StoreConfig(url=str(tmp_path / "store")),
            "checkpoints": {"url": checkpoints},
            "model_tag": "m",
            "stream": StreamConfig(lanes=2, segment_length=4),
            "write": WriteConfig(segment_length=4),
        }
        return NightlyParams(**{**base, **changes})

    return make


def land(folder: Path, names: tuple[str, ...], *, broken: str | None = None) -> None:
    """One ``.npy`` recording per name; ``broken`` is not an array at all."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        np.save(folder / f"{name}.npy", rng.normal(size=(FRAMES, FEATURES)).astype("float32"))
    if broken is not None:
        (folder / f"{broken}.npy").write_bytes(b"not an npy file at all")


def _report(state: Any) -> NightlyReport:
    """The report a nightly flow run's state carries, whether it completed or failed."""
    report = state.result(raise_on_failure=False)
    assert isinstance(report, NightlyReport), report
    return report


def _predicted(params: NightlyParams) -> set[str]:
    preds = PredictionRepository(open_store(params.store.url))
    return {i for i in ("a", "b", "c") if preds.exists("m", i) and preds.meta("m", i).complete}


# -- the core composition ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partial", "predicted"),
    [
        (True, {"a", "b"}),  # nightly: the sources that landed are predicted anyway
        (False, set()),  # a backfill day: all of it or nothing
    ],
)
def test_a_failed_source_and_partial(
    tmp_path: Path, nightly_for: Params, partial: bool, predicted: set[str]
) -> None:
    land(tmp_path / "landing", ("a", "b"), broken="c")
    params = nightly_for()
    pairs = nightly_pairs(params)
    assert [sid for _, sid in pairs] == ["a", "b", "c"]
    result = ingest_then_predict(
        pairs,
        nightly_ingest_params(params),
        nightly_predict_params(params),
        partial=partial,
        workers=2,
    )
    assert [r.sequence_id for r in result.failed] == ["c"] and result.landed == ("a", "b")
    assert result.frames == 2 * FRAMES
    assert result.predicted == (2 * FRAMES if partial else 0)
    assert _predicted(params) == predicted


def test_a_failed_prediction_is_recorded_with_what_landed(
    tmp_path: Path, nightly_for: Params
) -> None:
    land(tmp_path / "landing", ("a",))
    params = nightly_for(model_tag="missing")
    result = ingest_then_predict(
        nightly_pairs(params), nightly_ingest_params(params), nightly_predict_params(params)
    )
    assert result.landed == ("a",) and result.prediction is None
    assert "missing" in result.predict_error
    report = NightlyReport(params.landing, result)
    assert report.failed and report.message.startswith("predict failed: ")


def test_nothing_to_predict(tmp_path: Path, nightly_for: Params) -> None:
    params = nightly_for(predict=False)
    assert nightly_pairs(params) == []  # the landing folder does not even exist
    assert nightly_predict_params(params) is None
    land(tmp_path / "landing", ("a",))
    result = ingest_then_predict(nightly_pairs(params), nightly_ingest_params(params), None)
    assert result.landed == ("a",) and result.prediction is None and not result.predict_error
    assert NightlyReport(params.landing, result).message == "1 sequences ingested and predicted"


# -- the flow (a temporary Prefect server) -------------------------------------------------------


@pytest.mark.usefixtures("prefect_server")
def test_nightly_quiet_night_then_failed_source_then_fixed(
    tmp_path: Path, nightly_for: Params
) -> None:
    from flows.nightly import nightly

    params = nightly_for()
    quiet = nightly(params, return_state=True)
    assert quiet.is_completed() and quiet.message == "nothing landed"
    assert _report(quiet) == NightlyReport(params.landing)

    land(tmp_path / "landing", ("a", "b"), broken="c")
    state = nightly(params, return_state=True)
    report = _report(state)
    assert state.is_failed() and report.failed
    assert str(state.message).startswith("ingest failed: 1 source(s) failed:\nc: ")
    assert report.result is not None and report.result.prediction is not None
    assert _predicted(params) == {"a", "b"}  # predicted before the run ended failed

    land(tmp_path / "landing", ("c",))  # the broken file is replaced
    fixed = nightly(params, return_state=True)
    assert fixed.is_completed() and fixed.message == "3 sequences ingested and predicted"
    assert _predicted(params) == {"a", "b", "c"}
    result = _report(fixed).result
    assert result is not None and result.prediction is not None
    assert (result.prediction.skipped, result.prediction.predicted) == (2, 1)  # a, b done before


@pytest.mark.usefixtures("prefect_server")
def test_nightly_fails_when_the_prediction_fails(tmp_path: Path, nightly_for: Params) -> None:
    from flows.nightly import nightly

    land(tmp_path / "landing", ("a",))
    state = nightly(nightly_for(model_tag="missing"), return_state=True)
    assert state.is_failed() and str(state.message).startswith("predict failed: ")
    result = _report(state).result
    assert result is not None and result.landed == ("a",)
