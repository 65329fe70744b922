"""Class weights: counted from the training labels, applied in the loss, recorded with the model.

The effect test trains two tiny models (module scope, a few seconds) on an imbalanced,
noisy per-frame task, with and without ``balanced`` weights, and compares per-class recall
on held-out sequences of the same distribution.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from segflow.classweights import class_counts, class_weights
from segflow.config import ModelConfig, TrainParams
from segflow.engine.chunks import ArrayChunks, SequenceChunks
from segflow.engine.losses import elementwise, known_targets
from segflow.errors import ConfigError
from segflow.registry import load_model
from segflow.training import train
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tests.durable.conftest import train_params
from tests.engine.store_helpers import write_sequence

FEATURES = 3
TINY = ModelConfig(frame_shape=(FEATURES,), lstm_units=[8], task="binary")


def _imbalanced(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and a rare (about 12 %), noisy per-frame label: feature 0 plus noise high."""
    frames = rng.normal(size=(length, FEATURES)).astype(np.float32)
    labels = (frames[:, 0] + 0.7 * rng.normal(size=length) > 1.4).astype(np.float32)
    labels[rng.random(length) < 0.05] = np.nan  # sparse annotation: unlabelled frames
    return frames, labels


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store of imbalanced sequences of variable lengths, and held-out ones in memory."""
    root = tmp_path_factory.mktemp("class-weights")
    repo = SequenceRepository(LocalStore(root / "data"))
    rng = np.random.default_rng(3)
    for i, length in enumerate(rng.integers(60, 130, size=8)):
        frames, labels = _imbalanced(rng, int(length))
        write_sequence(repo, f"seq-{i}", frames, chunk_length=16, labels=labels)
    held = [_imbalanced(rng, 400) for _ in range(3)]
    return {"root": root, "url": str(root / "data"), "repo": repo, "held": held}


def _trained(stores: dict[str, Any], tag: str, **changes: Any) -> dict[str, Any]:
    ckpt = stores["root"] / f"ckpt-{tag}"
    params = train_params(
        stores["url"],
        str(ckpt),
        model=TINY,
        epochs=4,
        model_tag=tag,
        checkpoints={"url": str(ckpt), "every_steps": 1000, "keep": 1},
        stream={"lanes": 4, "segment_length": 32},
        **changes,
    )
    report = train(params)
    return {"report": report, "params": params, "ckpt": ckpt, "recall": _recall(stores, params)}


def _recall(stores: dict[str, Any], params: TrainParams) -> tuple[float, float]:
    """Per-class recall (0, then 1) of the exported model on the held-out sequences."""
    from segflow.engine.model import build_model

    loaded = load_model(params.checkpoints.open(), params.model_tag)
    model = build_model(loaded.config, batch_size=None, stateful=False)
    model.set_weights(loaded.weights)
    frames = np.stack([f for f, _ in stores["held"]])  # one batch, one traced call
    labels = np.stack([y for _, y in stores["held"]])
    call = tf.function(lambda x, m: model({"frames": x, "mask": m}, training=False))
    predicted = np.asarray(call(frames, np.ones(labels.shape, bool)))[..., 0] > 0.0
    hits, totals = np.zeros(2), np.zeros(2)
    for cls in (0, 1):
        rows = np.isfinite(labels) & (labels == cls)
        hits[cls], totals[cls] = np.sum(predicted[rows] == bool(cls)), np.sum(rows)
    return float(hits[0] / totals[0]), float(hits[1] / totals[1])


@pytest.fixture(scope="module")
def plain(stores: dict[str, Any]) -> dict[str, Any]:
    return _trained(stores, "plain")


@pytest.fixture(scope="module")
def balanced(stores: dict[str, Any]) -> dict[str, Any]:
    return _trained(stores, "balanced", class_weight="balanced")


def test_balanced_weights_raise_the_rare_class_recall(
    plain: dict[str, Any], balanced: dict[str, Any]
) -> None:
    plain_recall, weighted_recall = plain["recall"], balanced["recall"]
    # The rare class is found more often, at the price of some of the common class.
    assert weighted_recall[1] > plain_recall[1] + 0.15, (plain_recall, weighted_recall)
    assert weighted_recall[0] < plain_recall[0], (plain_recall, weighted_recall)


def test_balanced_weights_follow_sklearn_over_labelled_rows(
    stores: dict[str, Any], balanced: dict[str, Any]
) -> None:
    repo = stores["repo"]
    labels = np.concatenate([repo.labels(i)[:] for i in repo.ids()]).astype(np.float64)
    labels = labels[np.isfinite(labels)]  # unlabelled frames take no loss, so no weight
    n, positives = len(labels), float(np.sum(labels > 0.5))
    expected = (n / (2 * (n - positives)), n / (2 * positives))
    weights = balanced["report"].class_weights
    assert weights is not None and np.allclose(weights, expected), (weights, expected)
    assert weights[1] > 3 * weights[0]  # imbalanced indeed


def test_weights_are_recorded_in_the_report_and_export(balanced: dict[str, Any]) -> None:
    report = balanced["report"]
    assert json.loads(json.dumps(report.to_json()))["class_weights"] == list(report.class_weights)
    manifest = json.loads((balanced["ckpt"] / "models" / "balanced" / "manifest.json").read_text())
    assert manifest["class_weight"] == "balanced"
    assert manifest["class_weights"] == pytest.approx(list(report.class_weights))
    assert manifest["config"]["class_weights"] == pytest.approx(list(report.class_weights))


def test_resume_with_other_class_weights_is_refused(balanced: dict[str, Any]) -> None:
    params = balanced["params"].model_copy(update={"class_weight": None, "epochs": 5})
    with pytest.raises(ConfigError, match=r"class_weight=None.*'balanced'") as caught:
        train(params)
    assert "\n" not in str(caught.value)


def test_weighted_loss_equals_hand_computed_values() -> None:
    # Multiclass, 3 classes: uniform logits cost ln 3 each, times the label's class weight.
    config = ModelConfig(frame_shape=(2,), task="multiclass", outputs=3, class_weights=(1, 2, 4))
    logits = tf.zeros((4, 3))
    labels, known = known_targets(tf.constant([0.0, 2.0, 1.0, np.nan]), ())
    loss, metric = elementwise(config, (), logits, labels)
    ln3 = math.log(3)
    assert np.allclose(loss.numpy(), [ln3, 4 * ln3, 2 * ln3, ln3])
    assert known.numpy().tolist() == [1, 1, 1, 0]  # the NaN row weighs 0 in the engines' sums
    weighted_mean = float(tf.reduce_sum(loss * known) / tf.reduce_sum(known))
    assert weighted_mean == pytest.approx((1 + 4 + 2) * ln3 / 3)
    assert metric.numpy().tolist() == [1.0, 0.0, 0.0, 1.0]  # accuracy stays unweighted

    # One binary label: logits 0 cost ln 2; logit 2 on a positive costs ln(1 + e^-2).
    config = ModelConfig(frame_shape=(2,), task="binary", class_weights=(0.5, 3.0))
    loss, _ = elementwise(config, (), tf.constant([[0.0], [2.0], [0.0]]), tf.constant([0, 1, 1.0]))
    ln2 = math.log(2)
    assert np.allclose(loss.numpy(), [0.5 * ln2, 3 * math.log1p(math.exp(-2)), 3 * ln2])


def test_counts_by_head_and_label_spelling() -> None:
    frames = ArrayChunks(np.zeros((6, 1)), chunk_length=4)
    onehot = ArrayChunks(np.eye(3)[[0, 2, 2, 1, 2, 0]], chunk_length=4)
    config = ModelConfig(frame_shape=(1,), task="multiclass", outputs=3)
    assert class_counts([SequenceChunks("a", frames, onehot)], config) == {0: 2, 1: 1, 2: 3}
    many_to_one = config.model_copy(update={"head": "many_to_one"})
    last = [SequenceChunks("a", frames, onehot), SequenceChunks("b", frames, onehot)]
    assert class_counts(last, many_to_one) == {0: 2}  # only the label at each sequence's end


@pytest.mark.parametrize(
    ("config", "spec", "match"),
    [
        # a regression head has no classes to weigh
        (ModelConfig(frame_shape=(2,)), "balanced", "regression head"),
        # several independent binary labels: no single class per row
        (ModelConfig(frame_shape=(2,), task="binary", outputs=2), {1: 2.0}, "binary head"),
        # class 5 of a 3-class head
        (ModelConfig(frame_shape=(2,), task="multiclass", outputs=3), {5: 2.0}, r"\[5\]"),
    ],
)
def test_refusals_are_one_line(config: ModelConfig, spec: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        class_weights(spec, config, {0: 1.0})
    assert "\n" not in str(caught.value)


def test_balanced_labels_outside_the_head_are_refused() -> None:
    config = ModelConfig(frame_shape=(2,), task="multiclass", outputs=3)
    with pytest.raises(ConfigError, match=r"training labels hold classes \[3\]"):
        class_weights("balanced", config, {0: 4.0, 3: 1.0})


def test_training_a_regression_head_with_class_weights_is_refused(
    stores: dict[str, Any], tmp_path: Path
) -> None:
    params = train_params(
        stores["url"], str(tmp_path), model=ModelConfig(frame_shape=(FEATURES,), lstm_units=[4])
    ).model_copy(update={"class_weight": "balanced"})
    with pytest.raises(ConfigError, match=r"class_weight.*regression head"):
        train(params)


def test_class_weight_parameter_is_checked() -> None:
    with pytest.raises(ValueError, match="positive weights by class index"):
        train_params("d", "c", class_weight={0: -1.0})
