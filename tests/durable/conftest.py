"""Fixtures of the durable-run tests: tiny labelled sequences in a local store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.config import (
    CheckpointConfig,
    ModelConfig,
    SelectionConfig,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tests.engine.store_helpers import write_sequence

#: Lengths of the tiny training sequences (not multiples of the segment length, on purpose).
LENGTHS = (37, 30, 45, 41)
FEATURES = 3
TINY = ModelConfig(frame_shape=(FEATURES,), lstm_units=[8], task="binary")


def tiny_sequences(
    repo: SequenceRepository, lengths: tuple[int, ...] = LENGTHS, *, prefix: str = "seq"
) -> list[str]:
    """Write sequences whose per-frame label is whether feature 0 is above 0.

    The label depends on the current frame only, so a tiny LSTM learns it in a few epochs.
    """
    rng = np.random.default_rng(0)
    ids = []
    for i, length in enumerate(lengths):
        frames = rng.normal(size=(length, FEATURES)).astype(np.float32)
        labels = (frames[:, 0] > 0).astype(np.int8)
        sequence_id = f"{prefix}-{i}"
        write_sequence(repo, sequence_id, frames, chunk_length=8, labels=labels)
        ids.append(sequence_id)
    return ids


@pytest.fixture
def data_store(tmp_path: Path) -> tuple[SequenceRepository, list[str]]:
    """A local store holding :data:`LENGTHS` tiny labelled sequences, and their ids."""
    repo = SequenceRepository(LocalStore(tmp_path / "data"))
    return repo, tiny_sequences(repo)


def train_params(data_url: str, ckpt_url: str, **changes: Any) -> TrainParams:
    """Tiny training parameters: 2 lanes of 8 frames, tiny model, 2 epochs."""
    base: dict[str, Any] = {
        "store": StoreConfig(url=data_url),
        "selection": SelectionConfig(),
        "model": TINY,
        "stream": StreamConfig(lanes=2, segment_length=8),
        "checkpoints": CheckpointConfig(url=ckpt_url, every_steps=4, keep=2),
        "epochs": 2,
        "learning_rate": 1e-2,
        "seed": 0,
        "model_tag": "tiny",
    }
    return TrainParams(**{**base, **changes})
