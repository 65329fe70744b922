"""Models built by a user's factory (``segflow.engine.factory``) and the worked example
``examples/custom_model.py``: importing, the contract checks and their messages, the per-lane
state of nested recurrent layers, safe-mode loading, and the architecture digest.

The small factories below are addressed as ``f"{__name__}:<name>"``: whatever name pytest
imported this file under, it is in ``sys.modules``, so ``import_factory`` finds it.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

from examples import custom_model
from segflow.config import ModelConfig
from segflow.engine.factory import (
    ModelSpec,
    architecture_digest,
    build_from_factory,
    check_factory_record,
    factory_custom_objects,
    factory_record,
    import_factory,
    model_inputs,
)
from segflow.engine.lanes import read_lane_state, reset_all, reset_lanes, state_shapes
from segflow.errors import ConfigError

EXAMPLE = "examples.custom_model:build"
HERE = __name__
NOT_A_FACTORY = 3


def _spec(**changes: Any) -> ModelSpec:
    fields: dict[str, Any] = {"frame_shape": (3,), "batch_size": 2, "stateful": True}
    return ModelSpec(**{**fields, **changes})


# -- factories that break the contract, one way each ------------------------------------------


def _rnn_model(spec: ModelSpec, rnn: layers.Layer, *, mask: bool = True) -> keras.Model:
    inputs = model_inputs(spec)
    x = rnn(inputs["frames"], mask=inputs["mask"]) if mask else rnn(inputs["frames"])
    return keras.Model(inputs, layers.Dense(spec.outputs, name="head")(x))


def returns_a_string(spec: ModelSpec) -> Any:
    return "a model"


def raises(spec: ModelSpec) -> keras.Model:
    raise ValueError("no GPU here")


def frames_only(spec: ModelSpec) -> keras.Model:
    frames = model_inputs(spec)["frames"]
    x = layers.GRU(4, return_sequences=True, stateful=spec.stateful, name="gru")(frames)
    return keras.Model({"frames": frames}, layers.Dense(spec.outputs, name="head")(x))


def extra_input(spec: ModelSpec) -> keras.Model:
    inputs = model_inputs(spec)
    extra = keras.Input(batch_shape=(spec.batch_size, None, 1), name="extra")
    gru = layers.GRU(4, return_sequences=True, stateful=spec.stateful, name="gru")
    x = gru(layers.Concatenate()([inputs["frames"], extra]), mask=inputs["mask"])
    return keras.Model({**inputs, "extra": extra}, layers.Dense(1, name="head")(x))


def wrong_frame_shape(spec: ModelSpec) -> keras.Model:
    return _rnn_model(ModelSpec(**{**spec.to_json(), "frame_shape": (5,)}), _gru(spec))


def wrong_dtype(spec: ModelSpec) -> keras.Model:
    return _rnn_model(ModelSpec(**{**spec.to_json(), "input_dtype": "uint8"}), _gru(spec))


def wrong_batch(spec: ModelSpec) -> keras.Model:
    return _rnn_model(ModelSpec(**{**spec.to_json(), "batch_size": 3}), _gru(spec))


def wrong_outputs(spec: ModelSpec) -> keras.Model:
    return _rnn_model(ModelSpec(**{**spec.to_json(), "outputs": 4}), _gru(spec))


def sequences_for_many_to_one(spec: ModelSpec) -> keras.Model:
    return _rnn_model(spec, _gru(spec))  # return_sequences=True whatever the head


def two_outputs(spec: ModelSpec) -> keras.Model:
    inputs = model_inputs(spec)
    x = _gru(spec)(inputs["frames"], mask=inputs["mask"])
    return keras.Model(inputs, [layers.Dense(1, name="a")(x), layers.Dense(1, name="b")(x)])


def forgetful(spec: ModelSpec) -> keras.Model:
    return _rnn_model(spec, layers.GRU(4, return_sequences=True, stateful=False, name="gru"))


def bidirectional(spec: ModelSpec) -> keras.Model:
    gru = layers.GRU(4, return_sequences=True, stateful=spec.stateful)
    return _rnn_model(spec, layers.Bidirectional(gru, name="both_ways"))


def backwards(spec: ModelSpec) -> keras.Model:
    gru = layers.GRU(
        4, return_sequences=True, stateful=spec.stateful, go_backwards=True, name="back"
    )
    return _rnn_model(spec, gru)


def no_recurrence(spec: ModelSpec) -> keras.Model:
    inputs = model_inputs(spec)
    return keras.Model(inputs, layers.Dense(spec.outputs, name="head")(inputs["frames"]))


def always_stateful(spec: ModelSpec) -> keras.Model:
    return _rnn_model(spec, layers.GRU(4, return_sequences=True, stateful=True, name="gru"))


def _gru(spec: ModelSpec) -> layers.Layer:
    return layers.GRU(4, return_sequences=True, stateful=spec.stateful, name="gru")


# -- importing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "examples.custom_model",  # no function
        "examples.custom_model:",  # empty function
        ":build",  # no module
        "examples/custom_model.py:build",  # a file path, not a module
        "examples.custom_model:build:again",  # two colons
    ],
)
def test_a_malformed_path_is_refused(path: str) -> None:
    with pytest.raises(ConfigError, match=r"`model_factory`, expected an import path"):
        import_factory(path)


def test_a_missing_module_is_named_with_a_hint() -> None:
    with pytest.raises(
        ConfigError,
        match=r"module 'no_such_pkg\.models' could not be imported: "
        r"ModuleNotFoundError: No module named 'no_such_pkg'.*PYTHONPATH",
    ):
        import_factory("no_such_pkg.models:build")


def test_a_module_failing_on_import_is_named_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_factory_mod.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_factory_mod", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"'broken_factory_mod' could not be imported: "
        r"RuntimeError: boom",
    ):
        import_factory("broken_factory_mod:build")


def test_a_missing_or_uncallable_attribute_is_named() -> None:
    with pytest.raises(
        ConfigError,
        match=r"module 'examples\.custom_model' has no attribute "
        r"'biuld'",
    ):
        import_factory("examples.custom_model:biuld")
    with pytest.raises(ConfigError, match=r"is not callable: 'NOT_A_FACTORY' is a int"):
        import_factory(f"{HERE}:NOT_A_FACTORY")
    assert import_factory(EXAMPLE) is custom_model.build


# -- the contract ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "changes", "message"),
    [
        ("returns_a_string", {}, r"returned a str, expected a keras\.Model"),
        ("raises", {}, r"raised ValueError for ModelSpec\(.*\): no GPU here"),
        ("frames_only", {}, r"has no `mask` input \(its inputs: \['frames'\]\)"),
        ("extra_input", {}, r"takes inputs \['extra', 'frames', 'mask'\], expected exactly"),
        (
            "wrong_frame_shape",
            {},
            r"input 'frames' is \(2, None, 5\) float32, expected \(2, None, 3\) float32",
        ),
        ("wrong_dtype", {}, r"input 'frames' is \(2, None, 3\) uint8, expected .* float32"),
        ("wrong_batch", {}, r"input 'frames' is \(3, None, 3\) float32, expected \(2, None, 3\)"),
        ("wrong_outputs", {}, r"returns \(2, None, 4\), expected \(2, None, 1\)"),
        (
            "sequences_for_many_to_one",
            {"head": "many_to_one"},
            r"returns \(2, None, 1\), expected \(2, 1\) .*return_sequences=False",
        ),
        ("two_outputs", {}, r"has 2 outputs, expected one tensor of logits"),
        ("forgetful", {}, r"layer 'gru' .* has stateful=False, so it would forget"),
        ("bidirectional", {}, r"layer 'both_ways' .* Bidirectional layer reads each segment"),
        ("backwards", {}, r"layer 'back' .* go_backwards=True"),
        ("no_recurrence", {}, r"has no stateful recurrent layer"),
        (
            "always_stateful",
            {"stateful": False},
            r"layer 'gru' has stateful=True in a stateless model",
        ),
    ],
)
def test_a_model_breaking_the_contract_is_refused_with_its_reason(
    factory: str, changes: dict[str, Any], message: str
) -> None:
    path = f"{HERE}:{factory}"
    with pytest.raises(ConfigError, match=message) as raised:
        build_from_factory(path, _spec(**changes))
    assert str(raised.value).startswith(f"Model factory {path!r}")
    assert "\n" not in str(raised.value)


def test_a_spec_is_checked_and_round_trips() -> None:
    spec = ModelSpec.from_config(
        ModelConfig(frame_shape=(4,), task="multiclass", outputs=3, head="many_to_one"),
        batch_size=4,
        stateful=True,
        seed=7,
    )
    assert spec == ModelSpec((4,), "float32", 3, "multiclass", "many_to_one", 4, True, 7)
    assert ModelSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ConfigError, match=r"`head`, expected one of"):
        ModelSpec(frame_shape=(4,), head="many_to_few")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"`frame_shape`, expected a tuple of positive"):
        ModelSpec(frame_shape=(0, 3))
    with pytest.raises(ConfigError, match=r"`data`, expected a ModelSpec"):
        ModelSpec.from_json({"outputs": 2})


# -- the worked example ------------------------------------------------------------------------


@pytest.mark.parametrize("frame_shape", [(), (3,), (6, 6), (6, 6, 2)])
@pytest.mark.parametrize("head", ["many_to_many", "many_to_one"])
def test_the_example_builds_stateful_and_stateless_copies_alike(
    frame_shape: tuple[int, ...], head: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Keras saying a mask is lost
        stateful = build_from_factory(EXAMPLE, _spec(frame_shape=frame_shape, head=head))
        stateless = build_from_factory(
            EXAMPLE, _spec(frame_shape=frame_shape, head=head, batch_size=None, stateful=False)
        )
    stateless.set_weights(stateful.get_weights())
    assert architecture_digest(stateless) == architecture_digest(stateful)
    assert state_shapes(stateful) == {"block/gru/h": (6,), "lstm/h": (5,), "lstm/c": (5,)}
    assert stateless.output_shape == ((None, None, 1) if head == "many_to_many" else (None, 1))


def test_the_example_is_seeded() -> None:
    a = build_from_factory(EXAMPLE, _spec(seed=3)).get_weights()
    b = build_from_factory(EXAMPLE, _spec(seed=3)).get_weights()
    c = build_from_factory(EXAMPLE, _spec(seed=4)).get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def _stateless_example(spec: ModelSpec) -> keras.Model:
    model = build_from_factory(EXAMPLE, spec)
    weights = build_from_factory(EXAMPLE, _spec(frame_shape=spec.frame_shape)).get_weights()
    rng = np.random.default_rng(5)  # away from the initial values: biases are zero
    model.set_weights([w + rng.normal(scale=0.3, size=w.shape) for w in weights])
    return model


def test_every_recurrent_layer_of_the_example_takes_the_mask() -> None:
    # A masked frame in the middle must leave every state as if it were not there.
    model = _stateless_example(_spec(frame_shape=(3,), batch_size=None, stateful=False))
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 1, 1, 1], [1, 0, 0, 1, 1, 1]], bool)
    got = np.asarray(model({"frames": x, "mask": mask}))
    for row in range(2):
        keep = np.flatnonzero(mask[row])
        want = model({"frames": x[row : row + 1, keep], "mask": np.ones((1, keep.size), bool)})
        np.testing.assert_allclose(got[row, keep], np.asarray(want)[0], atol=1e-6)


def test_streaming_the_example_in_segments_equals_a_whole_pass() -> None:
    # Two lanes, lengths 7 and 4, segments of 3: the shorter one is padded and masked.
    spec = _spec(frame_shape=(6, 6))
    stateful = build_from_factory(EXAMPLE, spec)
    stateless = _stateless_example(_spec(frame_shape=(6, 6), batch_size=None, stateful=False))
    stateful.set_weights(stateless.get_weights())
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 9, 6, 6)).astype(np.float32)
    mask = np.zeros((2, 9), bool)
    mask[0, :7], mask[1, :4] = True, True
    reset_all(stateful)
    parts = [
        np.asarray(stateful({"frames": x[:, t : t + 3], "mask": mask[:, t : t + 3]}))
        for t in range(0, 9, 3)
    ]
    got = np.concatenate(parts, axis=1)
    for row, length in enumerate((7, 4)):
        want = stateless(
            {"frames": x[row : row + 1, :length], "mask": mask[row : row + 1, :length]}
        )
        np.testing.assert_allclose(got[row, :length], np.asarray(want)[0], atol=1e-5)


def test_resetting_a_lane_of_the_example_leaves_the_others_bit_for_bit() -> None:
    model = build_from_factory(EXAMPLE, _spec(batch_size=3))
    x = np.random.default_rng(2).normal(size=(3, 4, 3)).astype(np.float32)
    model({"frames": x, "mask": np.ones((3, 4), bool)})
    before = read_lane_state(model)
    assert set(before) == {"block/gru/h", "lstm/h", "lstm/c"}
    reset_lanes(model, np.array([False, True, False]))
    after = read_lane_state(model)
    for key in before:
        np.testing.assert_array_equal(after[key][[0, 2]], before[key][[0, 2]])
        assert not after[key][1].any()


def test_custom_objects_come_from_the_factory_module() -> None:
    found = factory_custom_objects(EXAMPLE)
    assert found["custom_model>FeatureScale"] is custom_model.FeatureScale
    assert found["custom_model>MaskedSequential"] is custom_model.MaskedSequential
    assert not any(name.split(">")[-1] in ("GRU", "LSTM", "Dense") for name in found)


def test_an_export_of_the_example_loads_in_safe_mode(tmp_path: Path) -> None:
    model = _stateless_example(_spec(frame_shape=(6, 6, 2), batch_size=None, stateful=False))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(
        tmp_path / "model.keras",
        safe_mode=True,
        compile=False,
        custom_objects=factory_custom_objects(EXAMPLE),
    )
    assert architecture_digest(loaded) == architecture_digest(model)
    x = np.random.default_rng(3).normal(size=(2, 5, 6, 6, 2)).astype(np.float32)
    inputs = {"frames": x, "mask": np.ones((2, 5), bool)}
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))


def test_the_digest_changes_with_the_architecture_only(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = architecture_digest(build_from_factory(EXAMPLE, _spec()))
    assert architecture_digest(build_from_factory(EXAMPLE, _spec(seed=9))) == digest
    monkeypatch.setattr(custom_model, "LSTM_UNITS", 7)
    assert architecture_digest(build_from_factory(EXAMPLE, _spec())) != digest
    monkeypatch.setattr(custom_model, "LSTM_UNITS", 5)
    monkeypatch.setattr(custom_model, "FeatureScale", lambda name: layers.Identity(name=name))
    assert architecture_digest(build_from_factory(EXAMPLE, _spec())) != digest


def test_a_factory_record_catches_a_changed_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(batch_size=None, stateful=False)
    record = factory_record(EXAMPLE, spec, build_from_factory(EXAMPLE, spec))
    check_factory_record(record, what="exported model 'mine'")  # same code: accepted
    stateful = build_from_factory(EXAMPLE, _spec())
    check_factory_record(record, what="checkpoint 'ckpt-1'", model=stateful)
    monkeypatch.setattr(custom_model, "GRU_UNITS", 3)
    with pytest.raises(
        ConfigError,
        match=r"Model factory 'examples\.custom_model:build' now "
        r"builds another architecture than the one exported model 'mine' was",
    ):
        check_factory_record(record, what="exported model 'mine'")
    with pytest.raises(ConfigError, match=r"`record`, expected the model factory record of"):
        check_factory_record({"path": EXAMPLE}, what="exported model 'mine'")
