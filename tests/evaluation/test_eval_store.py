"""evaluate() on a small store: sequences written as an ingest would, predictions written
as a predict run would (no model is run here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.config import EvaluateParams, SelectionConfig, StoreConfig
from segflow.errors import ConfigError
from segflow.evaluation import ClassificationScores, RegressionScores, evaluate, sequence_table
from storage.local import LocalStore
from storage.predictions import PredictionMeta, PredictionRepository
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

TAG = "m"
NAN = np.nan


class Store:
    """A local data store with sequences and the predictions of one tag."""

    def __init__(self, root: Path) -> None:
        self.url = str(root / "data")
        store = LocalStore(self.url)
        self.repo, self.preds = SequenceRepository(store), PredictionRepository(store)

    def add(self, sequence_id: str, labels: np.ndarray | None, **kw: Any) -> None:
        length = kw.pop("length", None) or len(labels if labels is not None else [])
        frames = np.zeros((length, 2), dtype=np.float32)
        write_sequence(self.repo, sequence_id, frames, chunk_length=4, labels=labels, **kw)

    def predict(self, sequence_id: str, outputs: np.ndarray, **meta: Any) -> None:
        outputs = np.asarray(outputs, dtype=np.float32).reshape(len(outputs), -1)
        head = meta.setdefault("head", "many_to_many")
        record = PredictionMeta(segment_length=4, outputs=outputs.shape[1], **meta)
        length = self.repo.meta(sequence_id).length
        array = self.preds.create(TAG, sequence_id, rows=length, meta=record)
        array[:] = outputs
        rows = length if head == "many_to_many" else 1
        self.preds.write_meta(TAG, sequence_id, record.replace(length=rows, complete=True))

    def params(self, **kw: Any) -> EvaluateParams:
        return EvaluateParams(store=StoreConfig(url=self.url), model_tag=TAG, **kw)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def test_binary_per_frame_with_class_names_gaps_and_plots(store: Store, tmp_path: Path) -> None:
    store.add("a", np.array([0, 0, 1, NAN, 1, 0], dtype=np.float32))
    store.predict("a", [0.1, 0.2, 0.8, 0.5, 0.4, 0.3])
    store.add("b", np.array([1, 1, 0, 0], dtype=np.float32))
    store.predict("b", [0.9, 0.6, 0.2, 0.7])
    store.add("c", np.array([1, 0], dtype=np.float32))  # no predictions under the tag
    store.add("d", None, length=3)  # no labels
    store.repo.group("a").attrs["class_names"] = ["dry", "rain"]
    plots = tmp_path / "plots"
    report = evaluate(store.params(plots_dir=str(plots), plot_sequence="b"))
    assert (report.task, report.task_source, report.head) == ("binary", "inferred", "many_to_many")
    assert report.class_names == ("dry", "rain")
    assert report.missing == ("c",) and report.unlabelled_sequences == ("d",)
    assert report.counts.scored == 9 and report.counts.unlabelled == 1
    assert isinstance(report.model, ClassificationScores)
    # a: 0.4 for label 1 is wrong; b: 0.7 for label 0 is wrong
    assert report.model.accuracy == pytest.approx(7 / 9)
    assert [s.id for s in report.sequences] == ["a", "b"]
    assert any("inferred" in note for note in report.notes)
    names = sorted(Path(p).name for p in report.plots)
    assert names == ["m-b.png", "m-confusion.png", "m-curves.png"]
    for path in report.plots:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_many_to_one_per_sequence_labels(store: Store) -> None:
    for sid, label, probs in [
        ("s0", 2, [0.1, 0.2, 0.7]),
        ("s1", 0, [0.6, 0.3, 0.1]),
        ("s2", 1, [0.5, 0.4, 0.1]),
        ("s3", 1, [0.2, 0.7, 0.1]),
    ]:
        store.add(sid, np.array([[label]], dtype=np.int64), length=5, label_kind="per_sequence")
        store.predict(sid, np.array([probs]), head="many_to_one")
    report = evaluate(store.params(selection=SelectionConfig(pattern="s[0-2]")), task="multiclass")
    assert report.task_source == "given" and report.head == "many_to_one"
    assert isinstance(report.model, ClassificationScores)
    assert report.model.rows == 3 and report.model.accuracy == pytest.approx(2 / 3)
    assert report.model.confusion == ((1, 0, 0), (1, 0, 0), (0, 0, 1))
    assert [b.name for b in report.baselines] == ["majority"]


def test_windowed_forecast_regression_against_persistence(store: Store) -> None:
    labels = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 13.0], dtype=np.float32)
    store.add("w", labels)
    # windows of 2 (row 0 NaN), horizon 1 (row 5 past the end)
    store.predict("w", [NAN, 3.0, 5.0, 8.0, 13.0, 21.0], horizon=1, time_steps=2)
    report = evaluate(store.params(), task="regression")
    counts = report.counts
    assert (counts.scored, counts.no_prediction, counts.past_end) == (4, 1, 1)
    assert isinstance(report.model, RegressionScores)
    assert report.model.mae == pytest.approx(0.0)  # rows 1..4 forecast 3, 5, 8, 13 exactly
    (persistence,) = report.baselines
    assert isinstance(persistence.scores, RegressionScores)
    # label t (2, 3, 5, 8) for label t+1 (3, 5, 8, 13): errors 1, 2, 3, 5
    assert persistence.scores.mae == pytest.approx(11 / 4)


def test_a_held_out_tail_is_scored_alone_with_history_from_before_it(store: Store) -> None:
    labels = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 13.0], dtype=np.float32)
    store.add("w", labels)
    store.predict("w", [2.0, 3.0, 4.0, 8.0, 13.0, 21.0], horizon=1)  # row t forecasts t + 1
    report = evaluate(store.params(start_frame=4), task="regression")
    counts = report.counts
    # rows 0-2 forecast frames 1-3 (before frame 4), row 5 forecasts past the end
    assert (counts.scored, counts.before_start, counts.past_end) == (2, 3, 1)
    assert isinstance(report.model, RegressionScores) and report.model.mae == pytest.approx(0.0)
    (persistence,) = report.baselines
    assert isinstance(persistence.scores, RegressionScores)
    # frames 4 and 5 (8, 13) against the labels of frames 3 and 4 (5, 8), known before the tail
    assert persistence.scores.mae == pytest.approx(4.0)
    (row,) = report.sequences
    assert row.before_start == 3
    assert "before start" in sequence_table(report).columns


def test_a_start_frame_is_refused_for_many_to_one_predictions(store: Store) -> None:
    store.add("s", np.array([[1]], dtype=np.int64), length=5, label_kind="per_sequence")
    store.predict("s", np.array([[0.3]]), head="many_to_one")
    with pytest.raises(ConfigError, match="`start_frame`, expected 0 for the many-to-one"):
        evaluate(store.params(start_frame=2), task="binary")


def test_refusals(store: Store) -> None:
    store.add("a", np.array([0, 1], dtype=np.float32))
    with pytest.raises(ConfigError, match="Nothing to evaluate for model tag 'm'"):
        evaluate(store.params())
    store.predict("a", [0.2, 0.8])
    with pytest.raises(ConfigError, match="`plot_sequence`"):
        evaluate(store.params(plot_sequence="zzz"))
    store.add("b", np.array([0, 1], dtype=np.float32))
    store.predict("b", [0.2, 0.8], horizon=1)
    with pytest.raises(ConfigError, match=r"differ in \(head, horizon, outputs\)"):
        evaluate(store.params())
