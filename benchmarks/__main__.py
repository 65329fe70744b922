"""``python -m benchmarks [NAME...]`` runs every benchmark (or the named ones), each alone."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def names() -> list[str]:
    """Benchmark modules: every module in this package not starting with an underscore."""
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main() -> int:
    chosen = sys.argv[1:] or names()
    failed = []
    for name in chosen:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
