"""The nightly job's fine-tune: tonight's labelled sequences train the next version of the model
tag, which predicts once it is whole; an interrupted fine-tune leaves the model in use, which
predicts that night, and a later night resumes it or, for other sequences, starts over.

Three nights in one store (each fine-tune is one epoch of a 4-unit LSTM):

1. ``a``, ``b`` (labelled) and ``c`` (not) land; the fine-tune is interrupted after 2 steps:
   ``m`` predicts, ``m`` is untouched, the night is failed;
2. the same night again (a retry): the fine-tune resumes and ``m.v2`` predicts;
3. again: nothing new to fine-tune on, no ``m.v3``.

And through the nightly flow: ``d`` lands where an interrupted fine-tune of other sequences
left ``m.v2``'s run; it is discarded and ``m.v2`` is trained on ``d`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import segflow.training
from segflow.checkpoint import CheckpointManager
from segflow.config import (
    CheckpointConfig,
    FineTune,
    NightlyParams,
    StoreConfig,
    StreamConfig,
    WriteConfig,
)
from segflow.finetune import current_version, fine_tune_params, version_tag
from segflow.landing import (
    LandingResult,
    NightlyReport,
    ingest_then_predict,
    nightly_ingest_params,
    nightly_pairs,
    nightly_predict_params,
)
from segflow.progress import StepEvent
from segflow.registry import has_export, train_run_key
from storage import open_store
from storage.predictions import PredictionRepository
from tests.backfill.archive import FEATURES, export_tiny_model

SETTINGS = FineTune(epochs=1, learning_rate=1e-2)


class Stop(Exception):
    """Raised from a training step: the fine-tune is interrupted."""


@pytest.fixture()
def nightly_params(tmp_path: Path) -> NightlyParams:
    """A nightly job fine-tuning ``m`` (an untrained tiny LSTM), checkpointing every step."""
    checkpoints = str(tmp_path / "ckpt")
    export_tiny_model(checkpoints, "m")
    return NightlyParams(
        landing=str(tmp_path / "landing"),
        store=StoreConfig(url=str(tmp_path / "store")),
        checkpoints=CheckpointConfig(url=checkpoints, every_steps=1),
        model_tag="m",
        stream=StreamConfig(lanes=2, segment_length=4),
        write=WriteConfig(segment_length=4),
        fine_tune=SETTINGS,
    )


def land(folder: Path, labelled: dict[str, int], unlabelled: dict[str, int] = {}) -> None:  # noqa: B006
    """Noisy recordings of the given lengths: ``.npz`` with per-frame labels, or ``.npy``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, length in {**labelled, **unlabelled}.items():
        rng = np.random.default_rng(length)
        frames = rng.normal(size=(length, FEATURES)).astype("float32")
        if name in labelled:
            labels = (frames[:, 0] + 0.3 * rng.normal(size=length) > 0).astype("int8")
            np.savez(folder / f"{name}.npz", frames=frames, labels=labels)
        else:
            np.save(folder / f"{name}.npy", frames)


def night(params: NightlyParams) -> LandingResult:
    """What the nightly task does: ingest what landed, fine-tune, predict."""
    return ingest_then_predict(
        nightly_pairs(params),
        nightly_ingest_params(params),
        nightly_predict_params(params),
        fine_tune=params.fine_tune,
    )


def interrupted_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next fine-tunes stop at their second step (their checkpoints stay)."""
    real = segflow.training.train

    def train(params: Any, **_: Any) -> Any:
        return real(params, on_step=_stop_at(2))

    monkeypatch.setattr(segflow.training, "train", train)


def model_files(params: NightlyParams, tag: str) -> dict[str, bytes]:
    """Every file of export ``tag``, to show it is untouched."""
    root = Path(params.checkpoints.url) / "models" / tag
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def predicted_by(params: NightlyParams, tag: str) -> set[str]:
    preds = PredictionRepository(open_store(params.store.url))
    ids = {"a", "b", "c", "d"}
    return {i for i in ids if preds.exists(tag, i) and preds.meta(tag, i).complete}


def test_nights_of_fine_tuning(
    tmp_path: Path, nightly_params: NightlyParams, monkeypatch: pytest.MonkeyPatch
) -> None:
    params, ckpt = nightly_params, nightly_params.checkpoints.open()
    in_use = model_files(params, "m")
    land(tmp_path / "landing", {"a": 13, "b": 9}, {"c": 11})

    # 1. interrupted: the model in use predicts, untouched; the night is failed
    with monkeypatch.context() as patch:
        interrupted_training(patch)
        first = night(params)
    tuned = first.fine_tune
    assert tuned is not None and tuned.error == "Stop: interrupted at step 2"
    assert (tuned.model_tag, tuned.base) == ("m", "m") and first.prediction is not None
    assert predicted_by(params, "m") == {"a", "b", "c"}
    assert model_files(params, "m") == in_use and current_version(ckpt, "m") == 1
    assert not has_export(ckpt, "m.v2")
    assert CheckpointManager(ckpt, train_run_key("m.v2")).latest() is not None
    report = NightlyReport(params.landing, first)
    assert report.failed
    assert report.message == (
        "fine-tune failed: Stop: interrupted at step 2; m predicts; "
        "3 sequences ingested and predicted"
    )

    # 2. the same night again: the fine-tune resumes, m.v2 predicts
    second = night(params)
    tuned = second.fine_tune
    assert tuned is not None and not tuned.error and tuned.ids == ("a", "b")
    assert tuned.report is not None and tuned.report.resumed_from is not None
    assert current_version(ckpt, "m") == 2 and predicted_by(params, "m.v2") == {"a", "b", "c"}
    assert model_files(params, "m") == in_use
    manifest = json.loads(ckpt.read_bytes("models/m.v2/manifest.json"))
    assert (manifest["init_from"], sorted(manifest["ids"])) == ("m", ["a", "b"])
    assert not NightlyReport(params.landing, second).failed

    # 3. and again: nothing new, no m.v3, nothing predicted twice
    third = night(params)
    assert third.fine_tune is not None and not third.fine_tune.tuned
    assert third.fine_tune.model_tag == "m.v2" and not has_export(ckpt, "m.v3")
    assert third.prediction is not None and third.prediction.skipped == 3


@pytest.mark.usefixtures("prefect_server")
def test_a_later_night_discards_an_interrupted_fine_tune_of_other_sequences(
    tmp_path: Path, nightly_params: NightlyParams
) -> None:
    from flows.nightly import nightly

    params = nightly_params
    # An earlier fine-tune of m on "a", interrupted after its first checkpoint.
    land(tmp_path / "earlier", {"a": 13})
    earlier = params.model_copy(update={"landing": str(tmp_path / "earlier"), "fine_tune": None})
    night(earlier)
    stale = fine_tune_params(nightly_predict_params(params), SETTINGS, ["a"], base="m", tag="m.v2")
    with pytest.raises(Stop):
        segflow.training.train(stale, on_step=_stop_at(2))
    land(tmp_path / "landing", {"d": 10})

    state = nightly(params, return_state=True)

    assert state.is_completed(), state.message
    result = state.result().result
    tuned = result.fine_tune
    assert tuned is not None and (tuned.model_tag, tuned.ids) == (version_tag("m", 2), ("d",))
    assert tuned.report is not None and tuned.report.resumed_from is None  # started over
    assert str(state.message).endswith("(m fine-tuned on 1 sequences; m.v2 predicts)")
    assert predicted_by(params, "m.v2") == {"d"}


def _stop_at(step: int) -> Callable[[StepEvent], None]:
    def stop(event: StepEvent) -> None:
        if event.step == step:
            raise Stop(f"interrupted at step {step}")

    return stop
