"""Selecting sequences: explicit ids, patterns, partitions, and errors that name the problem.

Training and prediction both select through :func:`segflow.selection.select_sequences`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segflow.config import SelectionConfig
from segflow.errors import ConfigError, IncompleteSequenceError, SequenceNotFoundError
from segflow.selection import select_sequences
from storage.local import LocalStore
from storage.sequences import SequenceRepository
from tests.durable.conftest import tiny_sequences
from tests.engine.store_helpers import write_sequence


@pytest.fixture
def mixed_repo(tmp_path: Path) -> SequenceRepository:
    """Complete sequences seq-0..3 (two in partition 2026-01-01) and incomplete 'broken'."""
    repo = SequenceRepository(LocalStore(tmp_path / "mixed"))
    tiny_sequences(repo)
    frames = np.zeros((10, 3), np.float32)
    write_sequence(
        repo, "broken", frames, chunk_length=8, labels=np.zeros(10, np.int8), complete=False
    )
    for sequence_id in ("seq-1", "seq-3"):
        repo.write_meta(sequence_id, repo.meta(sequence_id).replace(partition="2026-01-01"))
    return repo


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({}, ["seq-0", "seq-1", "seq-2", "seq-3"]),  # all complete ones, sorted; 'broken' skipped
        ({"ids": ["seq-2", "seq-0", "seq-2"]}, ["seq-2", "seq-0"]),  # given order, deduplicated
        ({"pattern": "seq-[12]"}, ["seq-1", "seq-2"]),  # shell-style pattern
        ({"partition": "2026-01-01"}, ["seq-1", "seq-3"]),  # one partition
        ({"ids": ["seq-3", "seq-1", "seq-0"], "partition": "2026-01-01"}, ["seq-3", "seq-1"]),
        ({"pattern": "*-[0-2]", "partition": "2026-01-01"}, ["seq-1"]),  # both filters apply
    ],
)
def test_select_sequences(
    mixed_repo: SequenceRepository, selection: dict[str, Any], expected: list[str]
) -> None:
    assert select_sequences(mixed_repo, SelectionConfig(**selection)) == expected


@pytest.mark.parametrize(
    ("selection", "error", "names"),
    [
        ({"pattern": "nothing-*"}, ConfigError, ["nothing-*"]),  # nothing matches
        ({"ids": []}, ConfigError, ["ids"]),  # explicitly empty
        ({"ids": ["seq-0", "ghost", "phantom"]}, SequenceNotFoundError, ["ghost", "phantom"]),
        ({"ids": ["seq-0", "broken"]}, IncompleteSequenceError, ["broken"]),
        ({"ids": ["ghost", "broken"]}, SequenceNotFoundError, ["ghost", "broken"]),
    ],
)
def test_select_sequences_errors_name_the_problem(
    mixed_repo: SequenceRepository, selection: dict[str, Any], error: type, names: list[str]
) -> None:
    with pytest.raises(error) as caught:
        select_sequences(mixed_repo, SelectionConfig(**selection))
    assert all(name in str(caught.value) for name in names)
