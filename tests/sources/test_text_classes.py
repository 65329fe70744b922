"""Text labels in a CSV label column: class indices, names stored with the sequence, carried
into the model's export and the evaluation reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segflow.config import (
    CheckpointConfig,
    EvaluateParams,
    IngestParams,
    PredictParams,
    SourceConfig,
    StoreConfig,
    TrainParams,
    WriteConfig,
)
from segflow.errors import ConfigError, SourceError
from segflow.evaluation import evaluate
from segflow.ingest.batch import ingest_many
from segflow.predicting import predict
from segflow.registry import load_exported_model
from segflow.sources.csv import CsvSource
from segflow.training import train
from storage import open_store
from storage.predictions import PredictionRepository
from storage.sequences import SequenceRepository

NAN = float("nan")


def _csv(path: Path, labels: list[str], seed: int = 0) -> str:
    """A noisy 3-feature series on different scales, one row per label cell."""
    rng = np.random.default_rng(seed)
    rows = ["time,temp,pressure,rain_mm,label"]
    for t, label in enumerate(labels):
        temp, hpa, mm = 15 + rng.normal(0, 4), 1013 + rng.normal(0, 9), abs(rng.normal(0, 1))
        rows.append(f"{t},{temp:.2f},{hpa:.1f},{mm:.2f},{label}")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _labels(source: CsvSource) -> np.ndarray:
    return np.concatenate([block.labels for block in source.blocks(3)])  # type: ignore[misc]


def test_names_become_sorted_class_indices_and_blanks_are_unlabelled(tmp_path: Path) -> None:
    source = CsvSource(_csv(tmp_path / "a.csv", ["sun", "", "rain", "fog ", "sun"]))
    assert source.probe().class_names == ("fog", "rain", "sun")
    np.testing.assert_array_equal(_labels(source), [2, NAN, 1, 0, 2])


def test_a_given_list_of_classes_fixes_the_indices(tmp_path: Path) -> None:
    path = _csv(tmp_path / "a.csv", ["sun", "rain", "sun"])
    source = CsvSource(path, class_names=["rain", "snow", "sun"])
    assert source.probe().class_names == ("rain", "snow", "sun")
    np.testing.assert_array_equal(_labels(source), [2, 0, 2])
    with pytest.raises(SourceError, match=r"line 3, column 'label': label 'rain' is not a number"):
        _labels(CsvSource(path, class_names=["sun", "snow"]))


def test_names_after_blank_first_rows_are_found_and_after_numbers_are_refused(
    tmp_path: Path,
) -> None:
    late = CsvSource(_csv(tmp_path / "late.csv", [""] * 1200 + ["rain", "dry"]))
    assert late.probe().class_names == ("dry", "rain")
    assert np.isnan(_labels(late)[:1200]).all()
    mixed = CsvSource(_csv(tmp_path / "mixed.csv", ["1"] * 1100 + ["rain"]))
    assert mixed.probe().class_names == ()
    with pytest.raises(SourceError, match=r"line 1102, .*'rain' is not a number or one of no"):
        _labels(mixed)


def test_binary_words_stay_numbers(tmp_path: Path) -> None:
    source = CsvSource(_csv(tmp_path / "a.csv", ["yes", "no", "", "True"]))
    assert source.probe().class_names == ()
    np.testing.assert_array_equal(_labels(source), [1, 0, NAN, 1])


def _ingest(tmp_path: Path, files: dict[str, list[str]], **source: object) -> IngestParams:
    params = IngestParams(
        sources=[
            _csv(tmp_path / f"{name}.csv", cells, i)
            for i, (name, cells) in enumerate(files.items())
        ],
        store=StoreConfig(url=str(tmp_path / "store")),
        source=SourceConfig(**source),  # type: ignore[arg-type]
        write=WriteConfig(segment_length=8),
    )
    results = ingest_many([(uri, Path(uri).stem) for uri in params.sources], params)
    assert all(r.status != "failed" for r in results), [r.message for r in results]
    return params


def _weather(rng: np.random.Generator, length: int) -> list[str]:
    cells = rng.choice(["rain", "sun", "fog", ""], size=length, p=[0.3, 0.4, 0.2, 0.1])
    return [str(c) for c in cells]


def test_names_travel_from_ingest_to_model_and_evaluation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    files = {"a": _weather(rng, 40), "b": [c for c in _weather(rng, 30) if c != "fog"]}
    _ingest(tmp_path, files)
    repo = SequenceRepository(open_store(str(tmp_path / "store")))
    assert repo.meta("a").class_names == ("fog", "rain", "sun")
    assert repo.meta("b").class_names == ("rain", "sun")  # b holds no fog
    store = StoreConfig(url=str(tmp_path / "store"))
    checkpoints = CheckpointConfig(url=str(tmp_path / "ckpt"))
    train_params = TrainParams(store=store, checkpoints=checkpoints, epochs=1, model_tag="w")
    with pytest.raises(ConfigError, match=r"'a' and 'b' name their label classes differently"):
        train(train_params)

    _ingest(tmp_path, files, class_names=("fog", "rain", "sun"))  # changed: written again
    assert repo.meta("b").class_names == ("fog", "rain", "sun")
    train(train_params)
    config, manifest, _ = load_exported_model(checkpoints.open(), "w")
    assert manifest["class_names"] == ["fog", "rain", "sun"]
    assert (config.task, config.outputs) == ("multiclass", 3)
    predict(PredictParams(store=store, checkpoints=checkpoints, model_tag="w"))
    predictions = PredictionRepository(open_store(str(tmp_path / "store")))
    assert predictions.meta("w", "b").class_names == ("fog", "rain", "sun")
    report = evaluate(EvaluateParams(store=store, model_tag="w"))
    assert report.class_names == ("fog", "rain", "sun")
    assert report.counts.unlabelled > 0


def test_an_append_with_other_classes_is_refused(tmp_path: Path) -> None:
    _ingest(tmp_path, {"a": ["rain", "sun", "rain"]})
    params = IngestParams(
        sources=[_csv(tmp_path / "more.csv", ["fog", "sun"])],
        store=StoreConfig(url=str(tmp_path / "store")),
        sequence_id="a",
        append=True,
        write=WriteConfig(segment_length=8),
    )
    (result,) = ingest_many([(params.sources[0], "a")], params)
    assert result.status == "failed" and "--classes rain,sun" in result.message
