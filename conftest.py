"""The test run's set-up, applied before pytest imports any project module.

pytest loads this file first (it sits in the rootdir), before it collects ``tests/`` and the
packages' doctests (``--doctest-modules``, see ``pyproject.toml``), so the environment below is
in place before TensorFlow or Prefect are imported by anything. Fixtures live in
``tests/conftest.py`` and beside the tests that use them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# tests/ is not a package, so pytest puts tests/ itself on sys.path, where tests/storage/ could
# pass for the project's `storage` package. With the project root on sys.path the real (regular)
# package always wins, also under the bare `pytest` command, and `tests.*` helpers import.
_ROOT = str(Path(__file__).resolve().parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# Quiet, isolated runs: TensorFlow and Prefect read these at their first import.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="segflow-test-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_URL", None)  # never talk to a developer's real server

from segflow.runtime import configure_runtime

configure_runtime()


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Keep conftest files out of ``--doctest-modules``: they hold fixtures, not examples.

    Outside a package every conftest is imported as the module ``conftest``; collecting one
    again for its doctests finds another directory's ``conftest`` in ``sys.modules`` and fails
    with "import file mismatch". pytest still loads them as conftests.
    """
    return True if collection_path.name == "conftest.py" else None
