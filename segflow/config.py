"""Typed, frozen configuration shared by the CLI, the core and the Prefect flows.

The same models are flow parameters, so the Prefect UI renders them as forms.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from segflow.ids import validate_id
from segflow.modelconfig import Cell, Encoder, Head, ModelConfig, Task
from segflow.recipe import Inputs, Recipe
from segflow.sources.classnames import is_text_label
from storage.credentials import merge_options, refuse_secrets
from storage.credentials import resolve as resolve_credentials
from storage.urls import DEFAULT_STORE, open_store
from storage.validation import invalid_argument

if TYPE_CHECKING:
    from storage import Store

__all__ = [
    "BackfillParams",
    "Cell",
    "CheckpointConfig",
    "DaskOptions",
    "DemoParams",
    "EarlyStopping",
    "Encoder",
    "EvaluateParams",
    "FineTune",
    "Frozen",
    "Head",
    "IngestParams",
    "Inputs",
    "Located",
    "ModelConfig",
    "ModelTag",
    "NightlyParams",
    "OptimizerConfig",
    "PredictParams",
    "Recipe",
    "SelectionConfig",
    "SourceConfig",
    "StoreConfig",
    "StreamConfig",
    "Task",
    "TrainParams",
    "WriteConfig",
]

#: A model tag: one safe path component (it names ``predictions/<tag>/`` and ``models/<tag>/``).
ModelTag = Annotated[str, AfterValidator(lambda value: validate_id(value, what="model tag"))]


class Frozen(BaseModel):
    """Base for segflow's configuration models: immutable, unknown fields refused."""

    # Inputs are not repeated in validation errors: a refused secret must not reach a log.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class Located(Frozen):
    """A location (store, checkpoints) with its fsspec options and where its secrets are.

    Secrets never travel as flow parameters (Prefect stores and shows those): they come from
    the Prefect block named by ``credentials_block``, or from the standard AWS chain
    (environment, profile, instance role) when there is none.
    """

    url: str = Field(..., description="Local path or s3://bucket/prefix.")
    storage_options: dict[str, Any] | None = Field(
        None,
        description=(
            "fsspec options without secrets, e.g. {'endpoint_url': 'http://127.0.0.1:9000'}."
        ),
    )
    credentials_block: str | None = Field(
        None,
        description=(
            "Prefect block holding the credentials: an AwsCredentials block (prefect-aws) or a "
            "Secret block whose value is a JSON object of fsspec options."
        ),
    )

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return refuse_secrets(value)

    def resolved_options(self) -> dict[str, Any] | None:
        """``storage_options`` with the credentials block's secrets added (never stored).

        >>> StoreConfig(url="s3://b", storage_options={"anon": True}).resolved_options()
        {'anon': True}
        """
        if self.credentials_block is None:
            return self.storage_options
        return merge_options(self.storage_options, resolve_credentials(self.credentials_block))

    def open(self) -> Store:
        """The store at ``url``, opened with :meth:`resolved_options`."""
        return open_store(self.url, self.resolved_options())


class StoreConfig(Located):
    """Where the Zarr store lives."""

    url: str = Field(DEFAULT_STORE, description="Local path or s3://bucket/prefix of the store.")


class DaskOptions(Frozen):
    """Where a flow's heavy work runs: in its own process (the default), on a new local Dask
    cluster of ``dask_workers`` processes, or on the running cluster at ``dask_address``."""

    dask_address: str | None = Field(
        None, description="Join this Dask scheduler, e.g. tcp://10.0.0.5:8786."
    )
    dask_workers: int | None = Field(
        None, gt=0, description="Start a local Dask cluster of this many worker processes."
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_use_dask(cls, data: Any) -> Any:
        # `use_dask: true` (older configs and the CLI's --dask) meant a 2-worker local cluster.
        if isinstance(data, dict) and "use_dask" in data:
            data = dict(data)
            if data.pop("use_dask") and not data.get("dask_address"):
                data.setdefault("dask_workers", 2)
        return data

    @model_validator(mode="after")
    def _one_cluster(self) -> DaskOptions:
        if self.dask_address is not None and self.dask_workers is not None:
            raise ValueError(
                "Received both `dask_address` and `dask_workers`, expected at most one of them "
                "(join a running cluster, or start a local one)"
            )
        if self.dask_address is not None and "://" not in self.dask_address:
            raise ValueError(
                f"Received dask_address={self.dask_address!r}, expected a scheduler address "
                "such as 'tcp://10.0.0.5:8786'"
            )
        return self

    @property
    def on_dask(self) -> bool:
        """Whether the work runs on a Dask cluster."""
        return self.dask_address is not None or self.dask_workers is not None


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
    class_names: tuple[str, ...] | None = Field(
        None,
        description="Classes of a CSV text label column, in index order (default: the names "
        "each file holds, sorted); give them when files do not all hold every class.",
    )
    npz_key: str | None = Field(None, description="Array to read from a .npz with several.")
    zarr_path: str | None = Field(
        None, description="Path of the array inside a Zarr source that is a group."
    )

    @field_validator("class_names")
    @classmethod
    def _text_class_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        names = tuple(name.strip() for name in value)
        if not names or len(set(names)) != len(names) or not all(map(is_text_label, names)):
            raise invalid_argument(
                "class_names", "distinct class names that are not numbers, yes/no or blank", value
            )
        return names

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
        description="Chunk compression: auto = blosc lz4 for integer frames that a sample "
        "shows lz4 shrinks at least 1.5x (smooth video, synthetic images), else none (noisy "
        "camera frames and photos, lz4 saving 11-30% there at more CPU than decoding); none "
        "for floats (they compress ~1.16x and decode on the streaming path).",
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


class IngestParams(DaskOptions):
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

    @field_validator("sequence_id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        return None if value is None else validate_id(value)


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


class CheckpointConfig(Located):
    """Where and how often checkpoints are written."""

    url: str = Field("./segflow-checkpoints", description="Local path or s3:// URL of checkpoints.")
    every_steps: int = Field(200, gt=0, description="Write a checkpoint every this many steps.")
    keep: int = Field(3, gt=0, description="Checkpoints kept (older ones are deleted).")


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
    on_changed_data: Literal["refuse", "restart_epoch"] = Field(
        "refuse",
        description="A resume over training sequences that changed since the checkpoint "
        "(grew, vanished, appeared): refuse, or restart_epoch (keep the weights, optimizer "
        "and finished epochs; run the interrupted epoch again over the sequences as they are).",
    )
    model: ModelConfig | None = Field(
        None, description="Model; default: inferred from the first sequence's frames and labels."
    )
    model_factory: str | None = Field(
        None, description="The inferred model is built by this factory (package.module:function)."
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
    class_weight: Literal["balanced"] | dict[int, float] | None = Field(
        None,
        description="Weigh the loss by class (binary or multiclass heads): 'balanced' "
        "(n_rows / (n_classes * rows of the class) over the training labels), or weights by "
        "class index, e.g. {0: 1.0, 1: 5.0} (classes left out weigh 1).",
    )
    mixed_precision: bool = Field(
        False,
        description="Compute in float16 with float32 weights (Keras 'mixed_float16'); GPUs only.",
    )

    @field_validator("class_weight")
    @classmethod
    def _positive_weights(
        cls, value: Literal["balanced"] | dict[int, float] | None
    ) -> Literal["balanced"] | dict[int, float] | None:
        if isinstance(value, dict) and (not value or min(value.values()) <= 0):
            raise invalid_argument(
                "class_weight", "'balanced' or positive weights by class index", value
            )
        return value

    @model_validator(mode="after")
    def _check_one_model(self) -> TrainParams:
        if self.model is not None and self.model_factory is not None:
            raise ValueError("Received both `model` and `model_factory`, expected one of them")
        return self


class PredictParams(DaskOptions):
    """Parameters of a prediction run (the predict flow's form in the Prefect UI)."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    model_tag: ModelTag = Field(
        "default", description="Predictions go to predictions/<model_tag>/."
    )
    stream: StreamConfig = Field(default_factory=StreamConfig)
    recompute: bool = Field(False, description="Recompute from frame 0 even if continuable.")
    break_lock: bool = Field(
        False,
        description=(
            "Take the tag's prediction lock even if another run holds it (only when that run "
            "is dead: two live writers would corrupt the predictions)."
        ),
    )


class EvaluateParams(DaskOptions):
    """Parameters of an evaluation: stored predictions scored against stored labels."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    model_tag: ModelTag = Field("default", description="Score predictions/<model_tag>/.")
    checkpoints: CheckpointConfig | None = Field(
        None, description="Where the model was exported: its config gives the task."
    )
    plots_dir: str | None = Field(
        None, description="Write PNGs (confusion matrix, curves, a sequence's predictions) here."
    )
    plot_sequence: str | None = Field(
        None, description="Sequence whose predictions are plotted against its labels."
    )
    start_frame: int = Field(
        0,
        ge=0,
        description="Score only rows whose target frame is at or after this one (a held-out "
        "tail of a series: a split in time); earlier frames still give persistence its history.",
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


class BackfillParams(DaskOptions):
    """Parameters of a backfill over an archive partitioned by date (the backfill flow's form).

    The archive holds one folder per day, ``<archive>/YYYY-MM-DD/<files>``, locally or under
    an S3 prefix. A partition already done for the same files and model tag is skipped.
    """

    archive: str = Field(
        "./archive",
        description=(
            "Local path or s3://bucket/prefix holding one folder per day: YYYY-MM-DD/ "
            "(an S3 archive is read with the store's storage options and credentials block)."
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


class FineTune(Frozen):
    """How the nightly job fine-tunes its model on the sequences labelled tonight.

    The sequences that landed tonight and have labels train the newest version of the model
    tag (its warm start), for ``epochs``; the result is exported as the next version
    (``<tag>.v2``, ``<tag>.v3``...) and predicts tonight, once it is whole. A failed or
    interrupted fine-tune leaves every version as it was: the night predicts with the
    version in use.

    >>> FineTune().epochs
    1
    """

    epochs: int = Field(1, gt=0, description="Passes over tonight's labelled sequences.")
    learning_rate: float = Field(1e-4, gt=0, description="Learning rate of the fine-tune.")
    min_sequences: int = Field(
        1, gt=0, description="Fine-tune only when at least this many labelled sequences landed."
    )
    seed: int = Field(0, description="Seed of the fine-tune's order.")


class NightlyParams(DaskOptions):
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
    fine_tune: FineTune | None = Field(
        None,
        description="Before predicting, fine-tune the model on tonight's labelled sequences "
        "and predict with the new version (<tag>.v2, <tag>.v3...) once it is whole.",
    )

    @model_validator(mode="after")
    def _check_fine_tune(self) -> NightlyParams:
        if self.fine_tune is not None and not self.predict:
            raise ValueError(
                "Received `fine_tune` with predict=False, expected predict=True: the nightly "
                "job fine-tunes the model it predicts with"
            )
        return self
