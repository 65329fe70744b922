"""Killed with SIGKILL in the middle of a write, a re-run finishes without redoing work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from segflow.config import WriteConfig
from segflow.ingest import ingest_source
from storage import open_store
from storage.sequences import SequenceRepository

SCRIPT = """
import sys
from segflow.config import WriteConfig
from segflow.ingest import ingest_source
from storage import open_store
from storage.sequences import SequenceRepository
repo = SequenceRepository(open_store(sys.argv[2]))
config = WriteConfig(segment_length=8, block_bytes=1, progress_seconds=0)
ingest_source(sys.argv[1], repo, write_config=config)
"""


def _progress(store: Path) -> dict:
    try:
        return json.loads((store / "sequences/big/zarr.json").read_text())["attributes"]["segflow"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return {}


def test_kill_9_mid_write_then_resume(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 255, size=(3000, 64, 64, 3), dtype="uint8")
    source = tmp_path / "big.npy"
    np.save(source, data)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(source), str(store)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _progress(store).get("frames_written", 0) < 200:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _progress(store)
    assert killed_at and not killed_at["complete"], "the kill must land mid-write"
    assert 0 < killed_at["frames_written"] < 3000
    assert killed_at["fingerprint"].startswith("pending:")  # hashed while writing

    repo = SequenceRepository(open_store(store))
    result = ingest_source(
        str(source),
        repo,
        write_config=WriteConfig(segment_length=8, block_bytes=1, progress_seconds=0),
    )
    assert result.status == "written"
    assert result.message.startswith("resume at frame")
    assert result.frames == 3000 - int(result.message.split()[-1])  # nothing redone
    assert repo.info("big").complete
    np.testing.assert_array_equal(repo.frames("big")[:], data)
    assert repo.meta("big").fingerprint.startswith("xxh3:")
