"""Bring your own model: a Keras model built by a factory the user names by import path.

A *model factory* is a function ``package.module:function`` that takes a frozen
:class:`ModelSpec` and returns a Keras model with segflow's contract::

    inputs  {"frames": (B, T, *frame_shape) input_dtype, "mask": (B, T) bool}
    outputs logits (B, T, outputs) for many_to_many, (B, outputs) for many_to_one

where ``B`` is ``spec.batch_size`` (the lanes) when ``spec.stateful``, and None otherwise, and
``T`` is None (segments and whole sequences have any length). segflow calls the factory twice
with the same spec but for ``stateful``/``batch_size``: a stateful copy that streams segments
and a stateless copy for whole sequences; both must have the same weights in the same order.

What a factory must do, and why:

- take its two inputs from :func:`model_inputs` (the names and shapes segflow feeds);
- give the mask to every recurrent layer (``layer(x, mask=inputs["mask"])``): padded frames
  then carry each state unchanged. Frames arrive raw: ``uint8`` frames are not scaled, so
  start with :class:`segflow.engine.model.ToFloat` (``ToFloat(1 / 255)``) if they are images;
- when ``spec.stateful``, build every recurrent layer with ``stateful=True`` (a
  ``stateful=False`` one would forget at every segment boundary), and none ``Bidirectional``
  or ``go_backwards=True`` (they read frames that have not arrived yet);
- name every layer explicitly: the state of each recurrent layer is checkpointed under its
  path (``"block/gru/h"``), which must not depend on how many models the process built;
- seed every initializer from ``spec.seed``, so a run can be repeated;
- decorate its own layers with ``@keras.saving.register_keras_serializable(package=...)`` and
  implement ``get_config``: exported ``.keras`` files load in Keras safe mode, with the custom
  objects of :func:`factory_custom_objects` (nothing is unpickled, so no ``Lambda`` layers).

:func:`build_from_factory` imports the factory, calls it and refuses, before any work, a model
that breaks this contract, with a message naming the layer or input and what is wrong.
:func:`architecture_digest` fingerprints the architecture, so a factory that now builds
another model is caught when an export made with it is loaded. ``examples/custom_model.py``
is a worked factory.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, get_args

import keras
from keras import layers

from segflow.config import Head, Task
from segflow.engine.lanes import check_streamable, recurrent_layers
from segflow.errors import ConfigError
from storage.validation import invalid_argument, require_positive_int

if TYPE_CHECKING:
    from segflow.config import ModelConfig

__all__ = [
    "ModelFactory",
    "ModelSpec",
    "architecture_digest",
    "build_from_factory",
    "check_factory_record",
    "check_model",
    "factory_custom_objects",
    "factory_record",
    "import_factory",
    "model_inputs",
]

#: Dtypes frames may have (those of ``ModelConfig.input_dtype``).
INPUT_DTYPES = ("uint8", "float32")


@dataclass(frozen=True)
class ModelSpec:
    """What a model factory is asked to build.

    Attributes:
        frame_shape: Shape of one frame, e.g. ``(features,)`` or ``(height, width, channels)``.
        input_dtype: Dtype of the frames: ``float32``, or ``uint8`` (fed raw, not scaled).
        outputs: Size of the head: regression targets, binary labels or classes.
        task: ``regression``, ``binary`` or ``multiclass``; the model returns logits for all.
        head: ``many_to_many`` (logits per frame) or ``many_to_one`` (per sequence: the last
            recurrent layer returns its last output, ``return_sequences=False``).
        batch_size: The fixed batch (the lanes) of a stateful model; None for a stateless one.
        stateful: Whether the recurrent layers keep their state between calls.
        seed: Seed of every initializer.

    >>> spec = ModelSpec(frame_shape=(4,), batch_size=2, stateful=True)
    >>> spec.to_json()["frame_shape"], ModelSpec.from_json(spec.to_json()) == spec
    ([4], True)
    >>> ModelSpec(frame_shape=(4,), stateful=True)
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received an invalid value for argument `batch_size`, expected a
    positive integer (the lanes of a stateful model), got None.
    """

    frame_shape: tuple[int, ...]
    input_dtype: str = "float32"
    outputs: int = 1
    task: Task = "regression"
    head: Head = "many_to_many"
    batch_size: int | None = None
    stateful: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        shape = tuple(self.frame_shape)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise invalid_argument("frame_shape", "a tuple of positive integers", self.frame_shape)
        object.__setattr__(self, "frame_shape", shape)
        if self.input_dtype not in INPUT_DTYPES:
            raise invalid_argument("input_dtype", " or ".join(INPUT_DTYPES), self.input_dtype)
        require_positive_int("outputs", self.outputs)
        for name, choices in (("task", get_args(Task)), ("head", get_args(Head))):
            if getattr(self, name) not in choices:
                raise invalid_argument(name, f"one of {choices}", getattr(self, name))
        if self.stateful or self.batch_size is not None:
            try:
                require_positive_int("batch_size", self.batch_size)
            except ConfigError:
                lanes = " (the lanes of a stateful model)" if self.stateful else " or None"
                raise invalid_argument(
                    "batch_size", f"a positive integer{lanes}", self.batch_size
                ) from None

    @classmethod
    def from_config(
        cls, config: ModelConfig, *, batch_size: int | None, stateful: bool, seed: int = 0
    ) -> ModelSpec:
        """The spec of ``config``'s model, for the arguments of ``build_model``."""
        return cls(
            frame_shape=tuple(config.frame_shape),
            input_dtype=config.input_dtype,
            outputs=config.outputs,
            task=config.task,
            head=config.head,
            batch_size=batch_size,
            stateful=stateful,
            seed=seed,
        )

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-serialisable data (for manifests)."""
        return {**asdict(self), "frame_shape": list(self.frame_shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        """The spec :meth:`to_json` wrote.

        Raises:
            ConfigError: If ``data`` is not such a spec.
        """
        try:
            return cls(**{**data, "frame_shape": tuple(data["frame_shape"])})
        except (KeyError, TypeError) as error:
            raise invalid_argument("data", "a ModelSpec as written by to_json()", data) from error


#: A model factory: builds the model a spec describes.
ModelFactory = Callable[[ModelSpec], keras.Model]


def model_inputs(spec: ModelSpec) -> dict[str, Any]:
    """The two inputs a factory's model takes, with the names, shapes and dtypes segflow feeds.

    Returns:
        ``{"frames": (B, None, *frame_shape) of spec.input_dtype, "mask": (B, None) bool}``,
        ``B`` being ``spec.batch_size``; build the model as ``keras.Model(inputs, logits)``.

    >>> inputs = model_inputs(ModelSpec(frame_shape=(8, 8), input_dtype="uint8"))
    >>> inputs["frames"].shape, inputs["frames"].dtype, inputs["mask"].shape
    ((None, None, 8, 8), 'uint8', (None, None))
    """
    frames = keras.Input(
        batch_shape=(spec.batch_size, None, *spec.frame_shape),
        dtype=spec.input_dtype,
        name="frames",
    )
    mask = keras.Input(batch_shape=(spec.batch_size, None), dtype="bool", name="mask")
    return {"frames": frames, "mask": mask}


# -- importing the factory ---------------------------------------------------------------------


def _split_path(path: str) -> tuple[str, str]:
    module, sep, name = path.partition(":") if isinstance(path, str) else ("", "", "")
    identifiers = [*module.split("."), *name.split(".")]
    if not sep or not all(part.isidentifier() for part in identifiers):
        raise invalid_argument("model_factory", "an import path 'package.module:function'", path)
    return module, name


def _import_module(module: str, path: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        hint = ""
        if error.name is not None and (module + ".").startswith(error.name + "."):
            # The factory's own module (or a parent package) is missing, not one it imports.
            hint = " (is the folder holding it on sys.path? Run from there or set PYTHONPATH)"
        raise ConfigError(
            f"Model factory {path!r}: module {module!r} could not be imported: "
            f"ModuleNotFoundError: {error}{hint}."
        ) from error
    except Exception as error:  # user code may raise anything on import
        raise ConfigError(
            f"Model factory {path!r}: module {module!r} could not be imported: "
            f"{type(error).__name__}: {error}."
        ) from error


def import_factory(path: str) -> ModelFactory:
    """Import the model factory ``path`` (``package.module:function``).

    Args:
        path: ``module:attribute``; the attribute may be dotted (``module:Builder.build``).

    Returns:
        The factory.

    Raises:
        ConfigError: On a malformed path, a module that cannot be imported, no such attribute,
            or an attribute that is not callable; one line naming the factory.

    >>> import_factory("examples.custom_model")
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received an invalid value for argument `model_factory`, expected
    an import path 'package.module:function', got 'examples.custom_model'.
    >>> import_factory("segflow.engine.factory:nothing")
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Model factory 'segflow.engine.factory:nothing': module
    'segflow.engine.factory' has no attribute 'nothing'.
    """
    module_name, name = _split_path(path)
    found: Any = _import_module(module_name, path)
    for part in name.split("."):
        if not hasattr(found, part):
            raise ConfigError(
                f"Model factory {path!r}: module {module_name!r} has no attribute {name!r}."
            )
        found = getattr(found, part)
    if not callable(found):
        raise ConfigError(
            f"Model factory {path!r} is not callable: {name!r} is a {type(found).__name__}; "
            "expected a function taking a ModelSpec and returning a keras.Model."
        )
    factory: ModelFactory = found
    return factory


# -- building and checking ---------------------------------------------------------------------


def build_from_factory(path: str, spec: ModelSpec) -> keras.Model:
    """Build the model of factory ``path`` for ``spec`` and check it keeps segflow's contract.

    Args:
        path: The factory, ``package.module:function``.
        spec: What to build.

    Returns:
        The model, checked: inputs ``frames`` and ``mask`` of the spec's shapes and dtypes,
        one output of the head's shape and, when ``spec.stateful``, streamable
        (:func:`segflow.engine.lanes.check_streamable`).

    Raises:
        ConfigError: If the factory cannot be imported, raises, or returns a model that breaks
            the contract; the message names the factory and the input, output or layer.
    """
    factory = import_factory(path)
    try:
        model = factory(spec)
    except ConfigError:
        raise
    except Exception as error:  # user code may raise anything
        raise ConfigError(
            f"Model factory {path!r} raised {type(error).__name__} for {spec}: {error}"
        ) from error
    check_model(model, spec, path)
    return model


def check_model(model: Any, spec: ModelSpec, path: str) -> None:
    """Refuse a model that does not keep the contract of :func:`build_from_factory`.

    Raises:
        ConfigError: Naming the factory ``path`` and what is wrong.
    """
    where = f"Model factory {path!r}"
    if not isinstance(model, keras.Model):
        raise ConfigError(f"{where} returned a {type(model).__name__}, expected a keras.Model.")
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ConfigError(
            f"{where} returned model {model.name!r} without symbolic inputs; expected a "
            "functional keras.Model(model_inputs(spec), logits)."
        )
    _check_inputs(model, spec, where)
    _check_output(model, spec, where)
    if spec.stateful:
        try:
            check_streamable(model)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    else:
        for layer in recurrent_layers(model):
            if layer.stateful:
                raise ConfigError(
                    f"{where}: layer {layer.path!r} has stateful=True in a stateless model "
                    "(spec.stateful is False); it would carry state from one sequence to the "
                    "next. Build it with stateful=spec.stateful."
                )


def _check_inputs(model: keras.Model, spec: ModelSpec, where: str) -> None:
    expected = model_inputs(spec)
    got = {tensor.name: tensor for tensor in model.inputs}
    if "mask" not in got:
        raise ConfigError(
            f"{where}: model {model.name!r} has no `mask` input (its inputs: {sorted(got)}); "
            "every recurrent layer needs the mask, so padded frames keep the state. Take "
            "both inputs from model_inputs(spec)."
        )
    if set(got) != set(expected):
        raise ConfigError(
            f"{where}: model {model.name!r} takes inputs {sorted(got)}, expected exactly "
            "['frames', 'mask']; take them from model_inputs(spec)."
        )
    for name, tensor in expected.items():
        have = got[name]
        if tuple(have.shape) != tuple(tensor.shape) or have.dtype != tensor.dtype:
            raise ConfigError(
                f"{where}: input {name!r} is {tuple(have.shape)} {have.dtype}, expected "
                f"{tuple(tensor.shape)} {tensor.dtype} for {spec}; take it from "
                "model_inputs(spec)."
            )


def _check_output(model: keras.Model, spec: ModelSpec, where: str) -> None:
    if len(model.outputs) != 1:
        raise ConfigError(
            f"{where}: model {model.name!r} has {len(model.outputs)} outputs, expected one "
            "tensor of logits."
        )
    shape = tuple(model.outputs[0].shape)
    if spec.head == "many_to_many":
        expected: tuple[int | None, ...] = (spec.batch_size, None, spec.outputs)
        what = "(batch, time, outputs): one prediction per frame"
    else:
        expected = (spec.batch_size, spec.outputs)
        what = "(batch, outputs): one prediction per sequence (return_sequences=False)"
    if shape != expected:
        raise ConfigError(
            f"{where}: model {model.name!r} returns {shape}, expected {expected} {what}, "
            f"for head {spec.head!r} and outputs={spec.outputs}."
        )


# -- loading and comparing ---------------------------------------------------------------------

#: Keras base classes whose subclasses a ``.keras`` file may name.
_SERIALIZABLE = (
    layers.Layer,
    keras.initializers.Initializer,
    keras.regularizers.Regularizer,
    keras.constraints.Constraint,
    keras.losses.Loss,
    keras.metrics.Metric,
)


def factory_custom_objects(path: str) -> dict[str, Any]:
    """The serializable objects of the factory's module, for ``load_model(custom_objects=...)``.

    Finds, among the module's names, the Keras layers, initializers, regularizers,
    constraints, losses and metrics that are not Keras' own (the module's, or imported from
    the user's other modules), and the functions registered with
    ``@keras.saving.register_keras_serializable``. Custom layers should be registered so:
    their ``.keras`` name is then ``"package>Name"``, the key here.

    Raises:
        ConfigError: If the factory's module cannot be imported.
    """
    module = _import_module(_split_path(path)[0], path)
    found: dict[str, Any] = {}
    for _, value in inspect.getmembers(module):
        name = _custom_name(value)
        if name is not None:
            found[name] = value
    return found


def _custom_name(value: Any) -> str | None:
    """The name ``value`` goes by in a ``.keras`` file if it is a custom object, else None."""
    if inspect.isclass(value) and issubclass(value, _SERIALIZABLE):
        if value.__module__.split(".")[0] in ("keras", "tensorflow", "tf_keras"):
            return None
        return str(keras.saving.get_registered_name(value))
    if inspect.isfunction(value):
        name = keras.saving.get_registered_name(value)
        if keras.saving.get_registered_object(name) is value and ">" in name:
            return str(name)
    return None


def _layer_tree(layer: Any, depth: int = 0) -> Iterator[str]:
    """One line per layer inside ``layer``, depth first: its depth and class."""
    inner = getattr(layer, "layers", None) or [
        getattr(layer, attr)
        for attr in ("layer", "forward_layer", "backward_layer")
        if isinstance(getattr(layer, attr, None), layers.Layer)
    ]
    for sub in inner:
        yield f"{depth} {keras.saving.get_registered_name(type(sub))}"
        yield from _layer_tree(sub, depth + 1)


def architecture_digest(model: keras.Model) -> str:
    """A digest of the model's architecture: its layer tree (classes, nesting) and the shapes
    and dtypes of its weights, in order.

    The same for the stateful and stateless copies of one factory and for the model loaded
    back from their ``.keras`` export; it changes when the factory builds other layers or
    weights of other shapes. Layer names are left out: Keras numbers unnamed layers per
    process (``dense_3``), so they are not a property of the architecture. Settings that
    leave every weight's shape alone (an activation, say) are not seen.
    """
    hasher = hashlib.sha256()
    for line in _layer_tree(model):
        hasher.update(f"layer {line}\n".encode())
    for weight in model.weights:
        hasher.update(f"weight {tuple(weight.shape)} {weight.dtype}\n".encode())
    return hasher.hexdigest()[:32]


def factory_record(path: str, spec: ModelSpec, model: keras.Model) -> dict[str, Any]:
    """What a checkpoint or export records of a factory's model: ``{"path", "spec",
    "architecture"}`` (the factory, the spec it was called with, :func:`architecture_digest`).
    """
    return {"path": path, "spec": spec.to_json(), "architecture": architecture_digest(model)}


def check_factory_record(record: Any, *, what: str, model: keras.Model | None = None) -> None:
    """Refuse a factory that no longer builds the architecture ``record`` holds.

    Args:
        record: A :func:`factory_record`.
        what: What the record belongs to, for the message (``"exported model 'mine'"``).
        model: The factory's model if already built; default: built from the record's spec.

    Raises:
        ConfigError: If the record is malformed, the factory cannot be imported or breaks the
            contract, or its model's architecture digest differs from the recorded one.
    """
    try:
        path, recorded = str(record["path"]), str(record["architecture"])
        spec = ModelSpec.from_json(record["spec"])
    except (KeyError, TypeError, ConfigError):
        raise invalid_argument(
            "record", f"the model factory record of {what} (path, spec, architecture)", record
        ) from None
    digest = architecture_digest(build_from_factory(path, spec) if model is None else model)
    if digest != recorded:
        raise ConfigError(
            f"Model factory {path!r} now builds another architecture than the one {what} was "
            f"made with (digest {digest}, recorded {recorded}): restore the factory's code, or "
            "train a new model under another tag."
        )
