"""Fixtures of the backfill tests: a temporary Prefect server and a tiny exported model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.backfill.archive import export_tiny_model
from tests.prefect_harness import shared_prefect_harness

if TYPE_CHECKING:
    from segflow.config import BackfillParams


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """Prefect's temporary server, one for every directory (tests/prefect_harness.py)."""
    with shared_prefect_harness():
        yield


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A checkpoint store holding the model tagged ``m``."""
    url = str(tmp_path_factory.mktemp("ckpt"))
    export_tiny_model(url, "m")
    return url


@pytest.fixture()
def params_for(tmp_path: Path, checkpoints: str) -> Callable[..., BackfillParams]:
    """Backfill parameters over ``tmp_path/archive`` into ``tmp_path/store``."""
    from segflow.config import BackfillParams, StoreConfig, StreamConfig, WriteConfig

    def make(**changes: object) -> BackfillParams:
        base = {
            "archive": str(tmp_path / "archive"),
            "store": StoreConfig(url=str(tmp_path / "store")),
            "checkpoints": {"url": checkpoints},
            "model_tag": "m",
            "stream": StreamConfig(lanes=2, segment_length=4),
            "write": WriteConfig(segment_length=4),
        }
        return BackfillParams(**{**base, **changes})

    return make
