"""Typed, frozen configuration shared by the CLI, the core and the Prefect flows.

The same models are flow parameters, so the Prefect UI renders them as forms.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from segflow.ids import validate_id
from storage.urls import DEFAULT_STORE


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
    feature_columns: list[str] | None = Field(
        None, description="CSV feature columns (default: every numeric column but the others)."
    )
    timestamp_column: str | None = Field(None, description="CSV timestamp column, if any.")
    label_column: str | None = Field(None, description="CSV per-row label column, if any.")
    npz_key: str | None = Field(None, description="Array to read from a .npz with several.")


class WriteConfig(Frozen):
    """How frames are laid out and written."""

    segment_length: int = Field(
        16, gt=0, description="Frames per segment: the time chunk of every array."
    )
    compression: Literal["lz4", "zstd", "none"] = Field(
        "lz4", description="Chunk compression (blosc lz4 + bitshuffle by default)."
    )
    write_workers: int = Field(
        2, gt=0, description="Blocks encoded and written concurrently."
    )
    block_bytes: int = Field(
        64 * 2**20,
        gt=0,
        description="Target bytes per written block (a whole number of segments, at least one).",
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
        False, description="Append the source's frames to an existing sequence (a growing recording)."
    )
    force: bool = Field(False, description="Re-ingest even if the source is unchanged.")
    source: SourceConfig = Field(default_factory=SourceConfig)
    write: WriteConfig = Field(default_factory=WriteConfig)
    use_dask: bool = Field(False, description="Run sources in parallel on a Dask cluster.")

    @field_validator("sequence_id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        return None if value is None else validate_id(value)
