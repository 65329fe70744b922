"""Typed, frozen configuration shared by the CLI, the core and the Prefect flows.

The same models are flow parameters, so the Prefect UI renders them as forms.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from segflow.ids import validate_id
from storage.urls import DEFAULT_STORE
from storage.validation import invalid_argument, require_non_negative_int, require_positive_int

#: A model tag: one safe path component (it names ``predictions/<tag>/`` and ``models/<tag>/``).
ModelTag = Annotated[str, AfterValidator(lambda value: validate_id(value, what="model tag"))]


class Frozen(BaseModel):
    """Base for segflow's configuration models: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreConfig(Frozen):
    """Where the Zarr store lives."""

    url: str = Field(DEFAULT_STORE, description="Local path or s3://bucket/prefix of the store.")
    storage_options: dict[str, Any] | None = Field(
        None, description="fsspec options for S3, e.g. {'endpoint_url': 'http://127.0.0.1:9000'}."
    )


class SourceConfig(Frozen):
    """How sources are decoded on the way in."""

    resize: tuple[int, int] | None = Field(
        None, description="Resize video/image frames to (height, width)."
    )
    grayscale: bool = Field(False, description="Convert video/image frames to one channel.")
    feature_columns: tuple[str, ...] | None = Field(
        None, description="CSV feature columns (default: every numeric column but the others)."
    )
    timestamp_column: str | None = Field(None, description="CSV timestamp column, if any.")
    label_column: str | None = Field(None, description="CSV per-row label column, if any.")
    npz_key: str | None = Field(None, description="Array to read from a .npz with several.")
    zarr_path: str | None = Field(
        None, description="Path of the array inside a Zarr source that is a group."
    )

    @field_validator("resize")
    @classmethod
    def _positive_resize(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) <= 0:
            raise invalid_argument("resize", "(height, width), two positive integers", value)
        return value


class WriteConfig(Frozen):
    """How frames are laid out and written."""

    segment_length: int = Field(
        16, gt=0, description="Frames per segment: the time chunk of every array."
    )
    compression: Literal["auto", "lz4", "zstd", "none"] = Field(
        "auto",
        description="Chunk compression: auto = blosc lz4 + bitshuffle for integer frames, "
        "none for floats (they compress ~1.16x and decode on the streaming path).",
    )
    write_workers: int = Field(2, gt=0, description="Chunks encoded and written concurrently.")
    block_bytes: int = Field(
        16 * 2**20,
        gt=0,
        description="Target bytes per written block (a whole number of segments, at least one).",
    )
    progress_seconds: float = Field(
        0.5,
        ge=0,
        description="Seconds between durable progress records; a resumed write redoes at most "
        "this much work (0: after every block).",
    )


class IngestParams(Frozen):
    """Parameters of one ingest run (the ingest flow's form in the Prefect UI)."""

    sources: list[str] = Field(
        ..., min_length=1, description="Paths, globs, directories or s3:// prefixes to ingest."
    )
    store: StoreConfig = Field(default_factory=StoreConfig)
    sequence_id: str | None = Field(
        None, description="Id for the sequence (one source only); default: from the file name."
    )
    labels: str | None = Field(
        None, description="Per-frame or per-sequence label file (one source only)."
    )
    append: bool = Field(
        False,
        description="Append the source's frames to an existing sequence (a growing recording).",
    )
    force: bool = Field(False, description="Re-ingest even if the source is unchanged.")
    source: SourceConfig = Field(default_factory=SourceConfig)
    write: WriteConfig = Field(default_factory=WriteConfig)
    use_dask: bool = Field(False, description="Run sources in parallel on a Dask cluster.")

    @field_validator("sequence_id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        return None if value is None else validate_id(value)


Encoder = Literal["none", "flatten", "avgpool", "conv"]
Cell = Literal["lstm", "gru", "simple_rnn", "conv_lstm"]
Head = Literal["many_to_many", "many_to_one"]
Task = Literal["regression", "binary", "multiclass"]

#: Frame ranks each encoder accepts.
_ENCODER_RANKS: dict[str, tuple[int, ...]] = {
    "none": (0, 1),
    "flatten": (0, 1, 2, 3),
    "avgpool": (2, 3),
    "conv": (2, 3),
}


class ModelConfig(BaseModel):
    """What the model looks like; everything needed to rebuild it.

    Attributes:
        frame_shape: Shape of one frame: ``()`` or ``(features,)`` for feature vectors,
            ``(height, width)`` or ``(height, width, channels)`` for images.
        input_dtype: Dtype of the frames fed to the model; ``uint8`` frames are scaled to
            ``[0, 1]`` float32 inside the graph.
        encoder: Per-frame encoder: ``none`` (feature vectors as they are), ``flatten``,
            ``avgpool`` (average pooling by ``pool_size``, then flatten) or ``conv`` (Conv2D +
            max pooling per entry of ``conv_filters``, then global average pooling).
        pool_size: Pooling window of the ``avgpool`` encoder.
        conv_filters: Filters of each Conv2D layer of the ``conv`` encoder.
        lstm_units: Units of each recurrent layer, first layer first (filters for
            ``conv_lstm``).
        normalize: Standardize each feature (the frames' last axis) inside the model with the
            mean and variance of the training sequences (set when training starts, stored
            with the weights). Float frames only.
        cell: The recurrent layers: ``lstm`` (default), ``gru``, ``simple_rnn``, or
            ``conv_lstm`` for image frames (ConvLSTM2D layers keep the spatial layout of the
            encoded frames, 3x3 kernels; global average pooling before the head).
        head: ``many_to_many`` (one prediction per frame) or ``many_to_one`` (one prediction
            per sequence: the output at its last real frame).
        task: ``regression`` (mean squared error), ``binary`` (sigmoid, one or several
            independent labels) or ``multiclass`` (softmax over ``outputs`` classes).
        outputs: Size of the head: regression targets, binary labels or classes.

    Example:
        >>> config = ModelConfig(frame_shape=(4,), lstm_units=[16], task="binary")
        >>> len(config.config_hash())
        64
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    frame_shape: tuple[int, ...] = Field(..., description="Shape of one frame.")
    input_dtype: Literal["uint8", "float32"] = Field("float32", description="Frame dtype.")
    encoder: Encoder = Field("none", description="Per-frame encoder.")
    pool_size: int = Field(2, description="Pooling window of the avgpool encoder.")
    conv_filters: list[int] = Field([8, 16], description="Conv2D filters of the conv encoder.")
    lstm_units: list[int] = Field(
        [32], description="Units (conv_lstm: filters) of each recurrent layer."
    )
    cell: Cell = Field("lstm", description="Recurrent layers: lstm, gru, simple_rnn, conv_lstm.")
    normalize: bool = Field(
        False,
        description="Standardize float features inside the model, from training statistics.",
    )
    head: Head = Field("many_to_many", description="Prediction per frame or per sequence.")
    task: Task = Field("regression", description="Loss and output activation.")
    outputs: int = Field(1, description="Size of the head.")

    @field_validator("frame_shape")
    @classmethod
    def _check_frame_shape(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d <= 0 for d in value):
            raise invalid_argument("frame_shape", "a tuple of positive integers", value)
        return value

    @field_validator("lstm_units", "conv_filters")
    @classmethod
    def _check_positive_list(cls, value: list[int], info: Any) -> list[int]:
        if not value or any(v <= 0 for v in value):
            raise invalid_argument(info.field_name, "a non-empty list of positive integers", value)
        return value

    @field_validator("pool_size", "outputs")
    @classmethod
    def _check_positive(cls, value: int, info: Any) -> int:
        return require_positive_int(info.field_name, value)

    @model_validator(mode="after")
    def _check_combination(self) -> ModelConfig:
        ranks = _ENCODER_RANKS[self.encoder]
        if len(self.frame_shape) not in ranks:
            raise ValueError(
                f"Received an invalid value for `frame_shape` with encoder {self.encoder!r}, "
                f"expected a shape of rank {' or '.join(map(str, ranks))}, "
                f"got {self.frame_shape}"
            )
        if self.cell == "conv_lstm" and (
            len(self.frame_shape) not in (2, 3) or self.encoder == "flatten"
        ):
            raise ValueError(
                "Received an invalid value for `cell` 'conv_lstm', expected image frames "
                "(height, width[, channels]) and an encoder that keeps them spatial (none, "
                f"avgpool or conv), got frame_shape {self.frame_shape} and encoder "
                f"{self.encoder!r}"
            )
        if self.normalize and self.input_dtype == "uint8":
            raise ValueError(
                "Received an invalid value for `normalize` with input_dtype 'uint8', expected "
                "False: uint8 frames are scaled to [0, 1], standardizing is for float features"
            )
        if self.task == "multiclass" and self.outputs < 2:
            raise ValueError(
                "Received an invalid value for `outputs` with task 'multiclass', expected at "
                f"least 2 classes, got {self.outputs}"
            )
        return self

    def config_hash(self) -> str:
        """Return a stable sha256 hex digest of the configuration (canonical JSON)."""
        # Fields added later are left out at their defaults, so a model's hash (which names
        # its checkpoints and predictions) does not change when segflow gains a field.
        data = self.model_dump(mode="json")
        for name, default in _LATER_DEFAULTS.items():
            if data.get(name) == default:
                data.pop(name)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


#: Fields :class:`ModelConfig` gained after its hashes were first used, with their defaults.
_LATER_DEFAULTS: dict[str, Any] = {"cell": "lstm", "normalize": False}


class SelectionConfig(Frozen):
    """Which stored sequences a run uses."""

    ids: list[str] | None = Field(
        None, description="Sequence ids; default: every complete sequence in the store."
    )
    pattern: str | None = Field(
        None, description="Shell-style pattern on ids (e.g. 'cam-*'), applied after `ids`."
    )
    partition: str | None = Field(None, description="Only sequences of this partition (date).")


class StreamConfig(Frozen):
    """How sequences are streamed through the stateful LSTM."""

    segment_length: int = Field(16, gt=0, description="Frames per lane per step.")
    lanes: int = Field(8, gt=0, description="Sequences streamed side by side (the batch).")


class CheckpointConfig(Frozen):
    """Where and how often checkpoints are written."""

    url: str = Field("./segflow-checkpoints", description="Local path or s3:// URL of checkpoints.")
    storage_options: dict[str, Any] | None = Field(None, description="fsspec options for S3.")
    every_steps: int = Field(200, gt=0, description="Write a checkpoint every this many steps.")
    keep: int = Field(3, gt=0, description="Checkpoints kept (older ones are deleted).")


Inputs = Literal["features", "labels", "features_and_labels"]


class Recipe(Frozen):
    """How rows become the model's inputs and targets: the article's shifted windows.

    At row ``t`` the model sees what is known at row ``t`` and predicts the label ``horizon``
    rows later:

    - ``inputs``: ``features`` (row t's features), ``labels`` (row t's label) or
      ``features_and_labels`` (both, concatenated; needs feature-vector frames);
    - ``horizon`` H: the target of row ``t`` is the label of row ``t + H``; rows whose target
      lies past the end of the labels take no loss, and their predictions are genuine
      forecasts. Label inputs need H >= 1 (a label cannot predict itself);
    - ``time_steps`` N: None streams the whole sequence through the stateful model; N trains
      and predicts a stateless model on windows of rows ``t-N+1 .. t``, ``batch_size`` windows
      per batch.

    Saved with the model: prediction uses the recipe the model was trained with.

    >>> Recipe(inputs="labels", horizon=1).describe()
    'labels of rows <= t -> label of row t+1, streamed statefully'
    >>> Recipe(inputs="labels")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Recipe
      Value error, Received an invalid value for argument `horizon`, expected an integer >= 1 ...
    """

    inputs: Inputs = Field(
        "features",
        description="What the model sees at row t: features, labels, or features_and_labels.",
    )
    horizon: int = Field(
        0, description="The target of row t is the label of row t + horizon (>= 1 with labels)."
    )
    time_steps: int | None = Field(
        None,
        description="None: stream statefully; N: a stateless model on windows of N rows.",
    )
    batch_size: int = Field(64, description="Windows per batch of a windowed (time_steps) model.")

    @field_validator("horizon")
    @classmethod
    def _check_horizon(cls, value: int) -> int:
        return require_non_negative_int("horizon", value)

    @field_validator("time_steps")
    @classmethod
    def _check_time_steps(cls, value: int | None) -> int | None:
        return None if value is None else require_positive_int("time_steps", value)

    @field_validator("batch_size")
    @classmethod
    def _check_batch_size(cls, value: int) -> int:
        return require_positive_int("batch_size", value)

    @model_validator(mode="after")
    def _check_label_horizon(self) -> Recipe:
        if self.inputs != "features" and self.horizon < 1:
            raise invalid_argument(
                "horizon",
                f"an integer >= 1 with inputs={self.inputs!r} (a label cannot predict itself)",
                self.horizon,
            )
        return self

    @property
    def windowed(self) -> bool:
        """Whether this is a stateless model on windows (``time_steps`` set)."""
        return self.time_steps is not None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Recipe:
        """The recipe a checkpoint cursor or an export manifest records under ``"recipe"``
        (runs from before recipes record none: the default recipe).

        >>> Recipe.from_record({}) == Recipe()
        True
        """
        return cls.model_validate(record.get("recipe") or {})

    def trains_like(self, other: Recipe) -> bool:
        """Whether two recipes train the same way (``batch_size`` matters to windows only).

        >>> Recipe(batch_size=8).trains_like(Recipe())
        True
        """
        ignore = set() if self.windowed or other.windowed else {"batch_size"}
        return self.model_dump(exclude=ignore) == other.model_dump(exclude=ignore)

    def describe(self) -> str:
        """One line saying what predicts what."""
        seen = {"features": "features", "labels": "labels"}.get(self.inputs, "features+labels")
        rows = "rows <= t" if self.time_steps is None else f"rows t-{self.time_steps - 1}..t"
        target = "t" if self.horizon == 0 else f"t+{self.horizon}"
        how = "streamed statefully" if self.time_steps is None else "windowed, stateless"
        return f"{seen} of {rows} -> label of row {target}, {how}"


class OptimizerConfig(Frozen):
    """How weights are updated: Adam or AdamW, gradient clipping, a learning-rate schedule.

    The learning rate itself is ``TrainParams.learning_rate`` (the peak, with a schedule).
    """

    name: Literal["adam", "adamw"] = Field("adam", description="adam, or adamw (weight decay).")
    weight_decay: float = Field(0.004, ge=0, description="AdamW's decoupled weight decay.")
    clipnorm: float | None = Field(
        None, gt=0, description="Clip gradients to this global norm (None: no clipping)."
    )
    schedule: Literal["constant", "cosine", "plateau"] = Field(
        "constant",
        description="constant; cosine decay to 0 over the run (after warmup_steps of linear "
        "warm-up); or plateau: multiply by plateau_factor when the monitored value stalls.",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps of the cosine schedule.")
    plateau_monitor: str = Field("val_loss", description="Value the plateau schedule watches.")
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="Learning-rate factor on a plateau.")
    plateau_patience: int = Field(2, gt=0, description="Epochs without improvement before it.")


class EarlyStopping(Frozen):
    """Stop training when a monitored value stops improving; export the best epoch.

    >>> EarlyStopping(monitor="val_accuracy").improves(0.91, than=0.9)
    True
    >>> EarlyStopping(min_delta=0.1).improves(0.95, than=1.0)
    False
    """

    monitor: str = Field(
        "val_loss", description="History value watched: val_loss, val_accuracy, val_mae, loss..."
    )
    patience: int = Field(3, gt=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as better.")

    @property
    def maximize(self) -> bool:
        """Whether larger is better (accuracy), else smaller (losses, errors)."""
        return self.monitor.endswith("accuracy")

    def improves(self, value: float, *, than: float) -> bool:
        """Whether ``value`` beats ``than`` by more than ``min_delta``."""
        gain = value - than if self.maximize else than - value
        return gain > self.min_delta


class TrainParams(Frozen):
    """Parameters of a training run (the train flow's form in the Prefect UI)."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    validation_ids: list[str] = Field(
        default_factory=list, description="Held-out sequences streamed after each epoch."
    )
    validation_pattern: str | None = Field(
        None, description="Held-out sequences: those whose id matches this shell pattern."
    )
    validation_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Held-out sequences: this fraction of the selection, a seeded split.",
    )
    model: ModelConfig | None = Field(
        None, description="Model; default: inferred from the first sequence's frames and labels."
    )
    stream: StreamConfig = Field(default_factory=StreamConfig)
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    epochs: int = Field(5, gt=0, description="Passes over the training sequences.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate.")
    seed: int = Field(0, description="Seed for weights and any sampling.")
    model_tag: ModelTag = Field("default", description="Name the trained model is exported under.")
    reset_every_segment: bool = Field(
        False, description="Baseline: reset the LSTM state at every segment (no memory)."
    )
    tensorboard_dir: str | None = Field(None, description="Write TensorBoard scalars here.")
    optimizer: OptimizerConfig = Field(
        default_factory=OptimizerConfig, description="Optimizer, clipping and schedule."
    )
    init_from: ModelTag | None = Field(
        None,
        description="Warm start: begin from the weights (and model and recipe) of this "
        "exported model, e.g. to fine-tune it on new data.",
    )
    shuffle: bool = Field(
        True,
        description="Shuffle the order sequences enter the lanes (or windows) every epoch, "
        "from the seed.",
    )
    early_stopping: EarlyStopping | None = Field(
        None, description="Stop when the monitored value stops improving; export the best epoch."
    )
    normalize: bool = Field(
        True,
        description="Inferred models standardize float features (statistics of the training "
        "sequences, stored with the model).",
    )
    recipe: Recipe = Field(
        default_factory=Recipe,
        description="Inputs, forecast horizon and windows (saved with the model).",
    )


class PredictParams(Frozen):
    """Parameters of a prediction run (the predict flow's form in the Prefect UI)."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    model_tag: ModelTag = Field(
        "default", description="Predictions go to predictions/<model_tag>/."
    )
    stream: StreamConfig = Field(default_factory=StreamConfig)
    recompute: bool = Field(False, description="Recompute from frame 0 even if continuable.")


class EvaluateParams(Frozen):
    """Parameters of an evaluation: stored predictions scored against stored labels."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    model_tag: ModelTag = Field("default", description="Score predictions/<model_tag>/.")
    plots_dir: str | None = Field(
        None, description="Write PNGs (confusion matrix, curves, a sequence's predictions) here."
    )
    plot_sequence: str | None = Field(
        None, description="Sequence whose predictions are plotted against its labels."
    )


class DemoParams(Frozen):
    """Parameters of the demo: a memory task on synthetic video, end to end.

    The defaults were tuned on this project's 2-core machines: many short videos learn in a
    few epochs, where a few long ones (the same frames in total) do not within minutes.
    """

    workdir: str = Field("segflow-demo", description="Where every output of the demo goes.")
    videos: int = Field(128, gt=3, description="Synthetic videos (a quarter are held out).")
    frames: int = Field(80, gt=0, description="Frames per video.")
    size: int = Field(32, gt=0, description="Frame height and width (even).")
    min_gap: int = Field(3, gt=1, description="Fewest frames between two flashes.")
    max_gap: int = Field(12, gt=1, description="Most frames between two flashes.")
    seed: int = Field(0, description="Seed of data and weights.")
    epochs: int = Field(25, gt=0, description="Training epochs of each model.")
    lanes: int = Field(16, gt=0, description="Sequences side by side.")
    segment_length: int = Field(8, gt=0, description="Frames per lane per step.")
    units: int = Field(16, gt=0, description="LSTM units.")
    learning_rate: float = Field(0.02, gt=0, description="Adam learning rate.")


class BackfillParams(Frozen):
    """Parameters of a backfill over an archive partitioned by date (the backfill flow's form).

    The archive holds one folder per day, ``<archive>/YYYY-MM-DD/<files>``, locally or under
    an S3 prefix. A partition already done for the same files and model tag is skipped.
    """

    archive: str = Field(
        "./archive",
        description=(
            "Local path or s3://bucket/prefix holding one folder per day: YYYY-MM-DD/ "
            "(an S3 archive is read with the store's storage options)."
        ),
    )
    start: datetime.date | None = Field(
        None, description="First day (inclusive, YYYY-MM-DD); default: the archive's first."
    )
    end: datetime.date | None = Field(
        None, description="Last day (inclusive, YYYY-MM-DD); default: the archive's last."
    )
    ordered: bool = Field(
        False,
        description=(
            "Recordings continue day to day: append each day's files to one sequence per "
            "camera, run days in date order, stop at the first failure."
        ),
    )
    force: bool = Field(False, description="Redo partitions already done.")
    dry_run: bool = Field(False, description="Only list what would run.")
    concurrency: int = Field(4, gt=0, le=32, description="Partitions run at once when not ordered.")
    predict: bool = Field(True, description="Predict each partition after ingesting it.")
    model_tag: ModelTag = Field(
        "default", description="Model predicting; markers are kept per tag."
    )
    store: StoreConfig = Field(default_factory=StoreConfig)
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    write: WriteConfig = Field(default_factory=WriteConfig)

    @model_validator(mode="after")
    def _check_range(self) -> BackfillParams:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(
                f"Received an invalid date range, expected `start` <= `end`, got start "
                f"{self.start} and end {self.end}"
            )
        return self


class NightlyParams(Frozen):
    """Parameters of the scheduled job: ingest new arrivals, then predict new/grown sequences."""

    landing: str = Field(
        "./landing",
        description=(
            "Folder, glob or s3:// prefix where new recordings land (read with the store's "
            "options)."
        ),
    )
    append: bool = Field(
        False,
        description=(
            "Append each landed file to the sequence of the same name (growing recordings)."
        ),
    )
    predict: bool = Field(True, description="Predict new and grown sequences after ingesting.")
    model_tag: ModelTag = Field("default", description="Model predicting (predictions/<tag>/).")
    store: StoreConfig = Field(default_factory=StoreConfig)
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    write: WriteConfig = Field(default_factory=WriteConfig)
